#include "store/d2c/route_source.h"

#include <pqxx/pqxx>

#include "core/log.h"
#include "core/pg/listener.h"
#include "core/pg/transaction.h"

namespace ferry::d2c {

RouteSource::RouteSource(pg::Pool& pool, std::chrono::milliseconds max_age)
    : pool_(pool), max_age_(max_age) {}

void RouteSource::Attach(pg::Listener& listener) {
  listener.Subscribe("ferry_routes", [this](const std::string&) { Invalidate(); });
  listener.OnResync([this] { Invalidate(); });
}

void RouteSource::Invalidate() {
  std::lock_guard lock(mutex_);
  stale_ = true;
}

std::shared_ptr<const routing::RouteSet> RouteSource::Current() {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (current_ && !stale_ && now - loaded_at_ < max_age_) return current_;
  // Cleared before reading, so a change announced during the load makes the
  // next call load again.
  stale_ = false;
  try {
    auto loaded = Load();
    if (!current_ || loaded->version() != current_->version()) {
      log::Get("routing")->info("route set loaded version={} routes={} endpoints={} fallback={}",
                                loaded->version(), loaded->routes().size(),
                                loaded->endpoints().size(), loaded->fallback_enabled());
    }
    current_ = std::move(loaded);
    loaded_at_ = now;
  } catch (const std::exception& e) {
    stale_ = true;
    if (!current_) throw;
    log::Get("routing")->warn("route set reload failed, routing with version={} error=\"{}\"",
                              current_->version(), e.what());
  }
  return current_;
}

std::shared_ptr<const routing::RouteSet> RouteSource::Load() {
  return pg::WithTransaction(
      pool_,
      [&](pqxx::dbtransaction& tx) {
        const pqxx::row settings =
            tx.exec1("SELECT fallback_enabled, version FROM routing_settings WHERE id = 1");
        std::vector<routing::EndpointTarget> endpoints;
        std::map<std::string, std::size_t> index;
        for (const auto& r : tx.exec("SELECT name, kind = 'kafka', coalesce(kafka_topic, '')"
                                     " FROM routing_endpoints ORDER BY name")) {
          index[r[0].as<std::string>()] = endpoints.size();
          endpoints.push_back(
              {r[0].as<std::string>(), r[1].as<bool>(), r[2].as<std::string>(), {}});
        }
        for (const auto& r : tx.exec("SELECT key, value, e FROM routing_enrichments,"
                                     " unnest(endpoints) AS e ORDER BY key")) {
          const auto it = index.find(r[2].as<std::string>());
          if (it == index.end()) continue;  // endpoint deleted since
          endpoints[it->second].enrichments.push_back(
              {r[0].as<std::string>(), r[1].as<std::string>()});
        }
        std::vector<routing::CompiledRoute> routes;
        for (const auto& r : tx.exec("SELECT name, source, condition, endpoint FROM routing_routes"
                                     " WHERE enabled ORDER BY name")) {
          auto parsed = routing::Query::Parse(r[2].as<std::string>());
          const auto it = index.find(r[3].as<std::string>());
          if (!std::holds_alternative<routing::Query>(parsed) || it == index.end()) {
            // Refused at creation, so only a hand-edited row gets here.
            log::Get("routing")->error("route skipped: its condition does not parse route=\"{}\"",
                                       r[0].as<std::string>());
            continue;
          }
          routes.push_back({r[0].as<std::string>(),
                            r[1].as<std::string>() == "DeviceLifecycleEvents",
                            std::get<routing::Query>(std::move(parsed)), it->second});
        }
        return std::make_shared<const routing::RouteSet>(settings[1].as<std::int64_t>(),
                                                         settings[0].as<bool>(),
                                                         std::move(endpoints), std::move(routes));
      },
      pg::TxOptions{.isolation = pg::Isolation::kRepeatableRead});
}

}  // namespace ferry::d2c
