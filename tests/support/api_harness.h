#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include "core/auth/authorizer.h"
#include "core/executor.h"
#include "core/kafka/mock_cluster.h"
#include "core/kafka/producer.h"
#include "core/pg/listener.h"
#include "core/pg/pool.h"
#include "services/audit/audit_service.h"
#include "services/auth/credential_cache.h"
#include "services/auth/policy_service.h"
#include "services/auth/policy_store.h"
#include "services/c2d/c2d_service.h"
#include "services/c2d/c2d_store.h"
#include "services/c2d/feedback.h"
#include "services/c2d/sweeper.h"
#include "services/c2d/wake_hub.h"
#include "services/device/device_messaging_service.h"
#include "services/events/events_service.h"
#include "services/registry/device_store.h"
#include "services/registry/lifecycle_publisher.h"
#include "services/registry/registry_service.h"
#include "services/routing/route_store.h"
#include "services/routing/routing_service.h"
#include "services/rpc/runtime.h"
#include "services/server.h"
#include "store/d2c/endpoint_sink.h"
#include "store/d2c/event_reader.h"
#include "store/d2c/event_store.h"
#include "store/d2c/route_source.h"
#include "tests/support/fake_clock.h"

namespace ferry::testing {

inline constexpr char kHubHost[] = "test-hub.local";
// The owner policy's primary key in every harness.
inline constexpr char kOwnerKey[] = "b3duZXIta2V5LWZvci1mZXJyeS10ZXN0cy0zMmJ5dGU=";

// Ferry's API services in this process on a free port, against the given
// (migrated) database, with SAS authentication as in ferryd, an owner policy
// (kOwnerKey), NOTIFY-driven credential cache, DeviceMessaging producing to
// an in-process mock Kafka, and a fake clock for domain times (tokens are
// checked against the fake clock too).
class ApiHarness final {
 public:
  explicit ApiHarness(const std::string& postgres_url);
  ~ApiHarness();

  [[nodiscard]] std::shared_ptr<grpc::Channel> Channel() const;
  FakeClock& clock() { return clock_; }
  prometheus::Registry& metrics() { return *registry_; }
  pg::Pool& pool() { return pool_; }
  const auth::SasAuthorizer& authorizer() const { return sas_; }
  access::CredentialCache& credentials() { return cache_; }
  pg::Listener& listener() { return listener_; }
  rpc::RpcRuntime& runtime() { return runtime_; }
  // The Kafka DeviceMessaging produces to (topic "ferry.d2c", 4 partitions).
  kafka::MockCluster& kafka() { return kafka_; }
  // The event store ferry.v1.Events reads and re-drives with (group
  // "ferry-d2c"), routing with the route source, delivering to Kafka
  // endpoints through the harness's producer.
  d2c::EventStore& event_store() { return event_store_; }
  d2c::RouteSource& route_source() { return route_source_; }
  kafka::Producer& producer() { return *producer_; }
  // C2D with a 60 s lock, 10 deliveries, depth 50 and a 1 hour default TTL
  // (on the fake clock).
  c2d::Store& c2d_store() { return c2d_store_; }
  c2d::WakeHub& wake_hub() { return wake_hub_; }
  // Feedback (TTL 1 hour, 10 deliveries) and a sweeper that is not started:
  // tests run its passes.
  c2d::FeedbackStore& feedback_store() { return feedback_store_; }
  c2d::Sweeper& sweeper() { return sweeper_; }

  // A token of the owner policy (all four permissions), valid for an hour
  // of the fake clock.
  [[nodiscard]] std::string OwnerToken() const;
  // A token signed with `key` for `resource`, expiring `ttl` after now.
  [[nodiscard]] std::string Token(const std::string& resource, const std::string& key,
                                  std::optional<std::string> policy,
                                  std::chrono::seconds ttl = std::chrono::hours(1)) const;
  // Adds the owner's token to `ctx`.
  void AsOwner(grpc::ClientContext& ctx) const;

 private:
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  FakeClock clock_{FromUnixMicros(ToUnixMicros(std::chrono::system_clock::now()))};
  pg::Pool pool_;
  pg::Listener listener_;
  access::CredentialStore credential_store_;
  access::CredentialCache cache_;
  auth::SasAuthorizer sas_;
  rpc::SasRpcAuthorizer authorizer_;
  Executor executor_{4};
  rpc::RpcRuntime runtime_;
  registry::DeviceStore devices_;
  registry::RegistryService registry_service_;
  access::PolicyStore policies_;
  access::PolicyService policy_service_;
  routing::RouteStore routes_;
  routing::RoutingService routing_service_;
  kafka::MockCluster kafka_{1};
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<device::DeviceMessagingService> device_service_;
  d2c::RouteSource route_source_{pool_};
  d2c::EventStore event_store_{pool_};
  d2c::EventReader event_reader_{pool_};
  std::unique_ptr<d2c::KafkaEndpointSink> sink_;
  std::unique_ptr<events::EventsService> events_service_;
  c2d::Store c2d_store_{pool_, c2d::Limits{}, 50};
  c2d::Metrics c2d_metrics_{*registry_};
  c2d::WakeHub wake_hub_;
  c2d::FeedbackMetrics feedback_metrics_{*registry_};
  c2d::FeedbackStore feedback_store_{pool_, 10};
  c2d::WakeHub feedback_hub_;
  c2d::Sweeper sweeper_{
      pool_,      c2d_store_,       feedback_store_, clock_, c2d::SweeperOptions{},
      *registry_, feedback_metrics_};
  std::unique_ptr<c2d::FeedbackService> feedback_service_;
  std::unique_ptr<c2d::DeviceC2d> device_c2d_;
  std::unique_ptr<c2d::CloudToDeviceService> c2d_service_;
  std::unique_ptr<registry::LifecyclePublisher> lifecycle_;
  audit::AuditService audit_service_{runtime_, pool_};
  std::unique_ptr<GrpcServer> server_;
};

// The `ferry-error-reason` trailing metadata of a finished call.
[[nodiscard]] std::string ErrorReason(const grpc::ClientContext& ctx);

}  // namespace ferry::testing
