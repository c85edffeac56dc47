#include "core/routing/route_set.h"

#include <algorithm>

namespace ferry::routing {

std::shared_ptr<const RouteSet> RouteSet::StoreEverything() {
  static const auto everything = std::make_shared<const RouteSet>(
      0, true, std::vector<EndpointTarget>{EndpointTarget{kStoreEndpoint, false, "", {}}},
      std::vector<CompiledRoute>{});
  return everything;
}

RouteSet::RouteSet(std::int64_t version, bool fallback_enabled,
                   std::vector<EndpointTarget> endpoints, std::vector<CompiledRoute> routes)
    : version_(version),
      fallback_enabled_(fallback_enabled),
      endpoints_(std::move(endpoints)),
      routes_(std::move(routes)) {
  const auto store = std::find_if(endpoints_.begin(), endpoints_.end(),
                                  [](const EndpointTarget& e) { return e.name == kStoreEndpoint; });
  if (store == endpoints_.end()) {
    endpoints_.push_back(EndpointTarget{kStoreEndpoint, false, "", {}});
    store_endpoint_ = endpoints_.size() - 1;
  } else {
    store_endpoint_ = static_cast<std::size_t>(store - endpoints_.begin());
  }
  for (const EndpointTarget& e : endpoints_) {
    for (const Enrichment& en : e.enrichments) {
      needs_device_fields_ = needs_device_fields_ || en.value.rfind("$device.", 0) == 0;
    }
  }
}

RouteDecision RouteSet::Route(const QueryInput& message, bool lifecycle) const {
  RouteDecision d;
  if (!routes_.empty()) {
    Evaluation evaluation(message);
    for (std::size_t i = 0; i < routes_.size(); ++i) {
      const CompiledRoute& r = routes_[i];
      if (r.lifecycle != lifecycle) continue;
      if (std::find(d.endpoints.begin(), d.endpoints.end(), r.endpoint) != d.endpoints.end()) {
        continue;  // already going there: its condition cannot add anything
      }
      switch (r.query.Evaluate(evaluation)) {
        case Outcome::kTrue:
          d.endpoints.push_back(r.endpoint);
          break;
        case Outcome::kFalse:
          break;
        case Outcome::kUndefined:
          d.undefined_routes.push_back(i);
          break;
      }
    }
  }
  if (d.endpoints.empty() && !lifecycle && fallback_enabled_) {
    d.endpoints.push_back(store_endpoint_);
    d.fallback = true;
  }
  std::sort(d.endpoints.begin(), d.endpoints.end());
  return d;
}

std::vector<std::pair<std::string, std::string>> RouteSet::Enrich(
    std::size_t endpoint, std::string_view hub_name, const DeviceFields* device) const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Enrichment& e : endpoints_.at(endpoint).enrichments) {
    std::string value = e.value;
    if (e.value == "$iothubname") {
      value = std::string(hub_name);
    } else if (e.value.rfind("$device.", 0) == 0 && device != nullptr) {
      if (const auto it = device->find(e.value.substr(8)); it != device->end()) value = it->second;
    }
    out.emplace_back(e.key, std::move(value));
  }
  return out;
}

std::string HubName(std::string_view hub_host) {
  return std::string(hub_host.substr(0, hub_host.find('.')));
}

}  // namespace ferry::routing
