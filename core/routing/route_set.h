#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/routing/query.h"

// One version of the routing configuration, compiled: endpoints, routes with
// their parsed conditions, enrichments and the fallback switch
// (docs/routing.md). Immutable once built; shared by every landing
// batch routed against it. Pure: no PostgreSQL or Kafka types.

namespace ferry::routing {

inline constexpr char kStoreEndpoint[] = "events";
inline constexpr std::size_t kMaxEnrichments = 10;

// An enrichment's value: a static string, `$iothubname`, or a device
// registry field `$device.<field>` (deviceId, generationId, etag, status,
// statusReason, connectionState). Anything else starting with `$` (IoT
// Hub's `$twin.` paths; Ferry has no twins) is stamped as the literal text,
// as IoT Hub does for a missing path.
struct Enrichment {
  std::string key;
  std::string value;
};

struct EndpointTarget {
  std::string name;
  bool kafka = false;  // else the event store
  std::string kafka_topic;
  std::vector<Enrichment> enrichments;
};

struct CompiledRoute {
  std::string name;
  bool lifecycle = false;  // source DeviceLifecycleEvents, else DeviceMessages
  Query query;
  std::size_t endpoint = 0;  // index into RouteSet::endpoints
};

struct RouteDecision {
  std::vector<std::size_t> endpoints;  // distinct, ascending
  bool fallback = false;               // taken by the fallback route
  // Routes whose condition evaluated to undefined or null (IoT Hub logs
  // these as route evaluation errors).
  std::vector<std::size_t> undefined_routes;
};

// Device registry fields for `$device.` enrichments, by field name.
using DeviceFields = std::map<std::string, std::string>;

class RouteSet final {
 public:
  // Everything to the event store: no routes, fallback on. Used before the
  // first route set is loaded by components that do not route.
  static std::shared_ptr<const RouteSet> StoreEverything();

  RouteSet(std::int64_t version, bool fallback_enabled, std::vector<EndpointTarget> endpoints,
           std::vector<CompiledRoute> routes);

  // Where a message goes: each distinct endpoint whose enabled routes of the
  // message's source match; with none, the store when the fallback is on
  // (device messages only: lifecycle events have no fallback), else nowhere
  // (dropped).
  [[nodiscard]] RouteDecision Route(const QueryInput& message, bool lifecycle) const;

  // Application properties to add for `endpoint`, resolved for one device.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> Enrich(
      std::size_t endpoint, std::string_view hub_name, const DeviceFields* device) const;

  [[nodiscard]] std::int64_t version() const { return version_; }
  [[nodiscard]] bool fallback_enabled() const { return fallback_enabled_; }
  [[nodiscard]] const std::vector<EndpointTarget>& endpoints() const { return endpoints_; }
  [[nodiscard]] const std::vector<CompiledRoute>& routes() const { return routes_; }
  // Index of the event store endpoint.
  [[nodiscard]] std::size_t store_endpoint() const { return store_endpoint_; }
  // Whether any enrichment reads a `$device.` field.
  [[nodiscard]] bool needs_device_fields() const { return needs_device_fields_; }
  // No routes at all: every device message goes to the store (fallback on)
  // or is dropped, without evaluating anything.
  [[nodiscard]] bool trivial() const { return routes_.empty(); }

 private:
  std::int64_t version_ = 0;
  bool fallback_enabled_ = true;
  std::vector<EndpointTarget> endpoints_;
  std::vector<CompiledRoute> routes_;
  std::size_t store_endpoint_ = 0;
  bool needs_device_fields_ = false;
};

// The hub name IoT Hub puts in `$iothubname` and lifecycle events: the first
// label of the hub host name ("myhub" for "myhub.example.com").
[[nodiscard]] std::string HubName(std::string_view hub_host);

}  // namespace ferry::routing
