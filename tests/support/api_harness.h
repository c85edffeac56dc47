#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include "core/kafka/mock_cluster.h"
#include "core/pg/listener.h"
#include "core/pg/pool.h"
#include "ferryd/components.h"
#include "tests/support/fake_clock.h"

namespace ferry::testing {

inline constexpr char kHubHost[] = "test-hub.local";
// The owner policy's primary key in every harness.
inline constexpr char kOwnerKey[] = "b3duZXIta2V5LWZvci1mZXJyeS10ZXN0cy0zMmJ5dGU=";

// Ferry's API services in this process on a free port, against the given
// (migrated) database: ferryd's components (ferryd/components.h) with SAS
// authentication, an owner policy (kOwnerKey), NOTIFY-driven credential
// cache, DeviceMessaging producing to an in-process mock Kafka, and a fake
// clock for domain times (tokens are checked against the fake clock too).
class ApiHarness final {
 public:
  explicit ApiHarness(const std::string& postgres_url);
  ~ApiHarness();

  [[nodiscard]] std::shared_ptr<grpc::Channel> Channel() const;
  // The port the services listen on (127.0.0.1).
  [[nodiscard]] int port() const;
  FakeClock& clock() { return clock_; }
  prometheus::Registry& metrics() { return *registry_; }
  pg::Pool& pool() { return pool_; }
  const auth::SasAuthorizer& authorizer() const { return components_->sas(); }
  access::CredentialCache& credentials() { return components_->credentials(); }
  pg::Listener& listener() { return components_->listener(); }
  rpc::RpcRuntime& runtime() { return components_->runtime(); }
  // The Kafka DeviceMessaging produces to (topic "ferry.d2c", 4 partitions).
  kafka::MockCluster& kafka() { return kafka_; }
  // The event store ferry.v1.Events reads and re-drives with (group
  // "ferry-d2c"), routing with the route source, delivering to Kafka
  // endpoints through the harness's producer.
  d2c::EventStore& event_store() { return components_->event_store(); }
  d2c::RouteSource& route_source() { return components_->route_source(); }
  kafka::Producer& producer() { return components_->producer(); }
  // C2D with a 60 s lock, 10 deliveries, depth 50 and a 1 hour default TTL
  // (on the fake clock).
  c2d::Store& c2d_store() { return components_->c2d_store(); }
  c2d::WakeHub& wake_hub() { return components_->wake_hub(); }
  // Feedback (TTL 1 hour, 10 deliveries) and a sweeper that is not started:
  // tests run its passes.
  c2d::FeedbackStore& feedback_store() { return components_->feedback_store(); }
  c2d::Sweeper& sweeper() { return *components_->sweeper(); }

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
  kafka::MockCluster kafka_{1};
  std::unique_ptr<Components> components_;
};

// The `ferry-error-reason` trailing metadata of a finished call.
[[nodiscard]] std::string ErrorReason(const grpc::ClientContext& ctx);

}  // namespace ferry::testing
