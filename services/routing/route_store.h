#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"

namespace ferry::pg {
class Pool;
}

namespace ferry::routing {

inline constexpr char kBuiltInEndpoint[] = "events";
inline constexpr std::size_t kMaxRoutes = 100;
inline constexpr std::size_t kMaxCustomEndpoints = 10;

struct EndpointRecord {
  std::string name;
  bool kafka = false;  // else the event store (the built-in `events` only)
  std::string kafka_topic;
  TimePoint created_at;
};

struct RouteRecord {
  std::string name;
  std::string source = "DeviceMessages";  // or "DeviceLifecycleEvents"
  std::string condition;
  std::string endpoint;
  bool enabled = true;
  TimePoint created_at;
  TimePoint updated_at;
};

struct EnrichmentRecord {
  std::string key;
  std::string value;
  std::vector<std::string> endpoints;
};

struct RoutingSettings {
  bool fallback_enabled = true;
  std::int64_t version = 0;
};

// Tables routing_endpoints, routing_routes, routing_settings (migration
// 0004). Limits hold under a table lock. Throws ferry::Error: kRouteNotFound,
// kRouteAlreadyExists, kEndpointNotFound, kEndpointAlreadyExists,
// kEndpointInUse, kRoutingLimitExceeded, kServiceUnavailable. Inputs are
// validated by the caller. Thread-safe.
class RouteStore final {
 public:
  explicit RouteStore(pg::Pool& pool) : pool_(pool) {}

  EndpointRecord CreateEndpoint(const EndpointRecord& endpoint, TimePoint now);
  std::vector<EndpointRecord> ListEndpoints();
  void DeleteEndpoint(const std::string& name);

  RouteRecord CreateRoute(const RouteRecord& route, TimePoint now);
  RouteRecord UpdateRoute(const RouteRecord& route, TimePoint now);
  RouteRecord GetRoute(const std::string& name);
  std::vector<RouteRecord> ListRoutes();
  void DeleteRoute(const std::string& name);

  // Creates or replaces by key; kEndpointNotFound, kRoutingLimitExceeded (10).
  EnrichmentRecord SetEnrichment(const EnrichmentRecord& enrichment, TimePoint now);
  std::vector<EnrichmentRecord> ListEnrichments();
  void DeleteEnrichment(const std::string& key);  // kEnrichmentNotFound

  RoutingSettings GetSettings();
  RoutingSettings SetFallback(bool enabled);

 private:
  pg::Pool& pool_;
};

}  // namespace ferry::routing
