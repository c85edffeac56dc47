#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/registry.h>

#include "core/auth/authorizer.h"
#include "core/clock.h"
#include "core/executor.h"
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

namespace ferry {

// What the components are built with: ferryd maps its configuration onto
// this (app.cc); the test harness (tests/support/api_harness.h) sets its
// own values.
struct ComponentOptions {
  std::string hub_host = "localhost";  // the SAS tokens' audience
  std::string hub_name;                // in routed records and lifecycle events
  std::string d2c_topic = "ferry.d2c";
  std::string d2c_group = "ferry-d2c";  // the group ferry.v1.Events reads for
  // The producer (SendEvent, lifecycle events, Kafka endpoints).
  std::string kafka_brokers;
  std::map<std::string, std::string> kafka_properties;
  std::chrono::seconds endpoint_ack_timeout{30};
  bool insecure_no_auth = false;  // every caller may do anything
  std::chrono::seconds auth_clock_skew{60};
  std::size_t rpc_workers = 8;
  rpc::ThrottleRates throttles;
  c2d::Limits c2d_limits;
  int c2d_max_queue_depth = 50;
  std::chrono::seconds c2d_default_ttl{3600};
  c2d::FeedbackOptions feedback;
  int feedback_max_delivery_count = 10;
  // The api role: serve its gRPC services and publish lifecycle events.
  bool api = true;
  // The sweeper role: built when set (started by Start when asked).
  std::optional<c2d::SweeperOptions> sweeper;
};

// The composition root of the api and sweeper roles: every store, service,
// wake-up hub and worker they use, wired once, for ferryd's Serve and for
// the test harness alike. Given the database pool, the metrics registry
// and the clock for domain times. (The d2c role's consumer and maintenance
// use event_store(); app.cc builds them, and stops them before Shutdown.)
//
// It owns the process's LISTEN connection and the one order of starting and
// stopping: its members subscribe to the listener when built; Start starts
// the listener, then the workers and the server; Shutdown stops them in
// reverse and the listener last. The destructor runs Shutdown when the
// caller did not (say Start threw because the port is taken), so no
// notification or resync reaches a member that is gone.
class Components final {
 public:
  Components(const ComponentOptions& options, pg::Pool& pool, prometheus::Registry& registry,
             const Clock& clock);
  ~Components();
  Components(const Components&) = delete;
  Components& operator=(const Components&) = delete;

  // Starts the listener, the lifecycle publisher (api) and, with
  // `start_sweeper`, the sweeper, then serves the api role's services (none without it) plus
  // health on `server`.
  void Start(const GrpcServerOptions& server, bool start_sweeper);
  // Stops the workers, wakes every waiting receive and stream, shuts the
  // server down within `grace`, stops the executor, then the listener.
  // Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

  pg::Listener& listener() { return listener_; }
  [[nodiscard]] const auth::SasAuthorizer& sas() const { return sas_; }
  access::CredentialCache& credentials() { return credentials_; }
  Executor& executor() { return executor_; }
  rpc::RpcRuntime& runtime() { return runtime_; }
  access::PolicyStore& policies() { return policies_; }
  d2c::RouteSource& route_source() { return route_source_; }
  kafka::Producer& producer() { return *producer_; }
  d2c::EventStore& event_store() { return event_store_; }
  c2d::Store& c2d_store() { return c2d_store_; }
  c2d::WakeHub& wake_hub() { return wake_hub_; }
  c2d::FeedbackStore& feedback_store() { return feedback_store_; }
  // Null without the api role.
  registry::LifecyclePublisher* lifecycle() { return lifecycle_.get(); }
  // Null without options.sweeper.
  c2d::Sweeper* sweeper() { return sweeper_.get(); }
  // Once started.
  GrpcServer& server() { return *server_; }

 private:
  const ComponentOptions options_;
  bool shut_down_ = false;
  access::CredentialStore credential_store_;
  access::CredentialCache credentials_;
  d2c::RouteSource route_source_;
  auth::SasAuthorizer sas_;
  rpc::SasRpcAuthorizer sas_authorizer_{sas_};
  rpc::AllowAllAuthorizer allow_all_;
  Executor executor_;
  rpc::RpcRuntime runtime_;
  registry::DeviceStore devices_;
  registry::RegistryService registry_service_;
  access::PolicyStore policies_;
  access::PolicyService policy_service_;
  routing::RouteStore routes_;
  routing::RoutingService routing_service_;
  // One producer for SendEvent, lifecycle events and Kafka endpoints; the
  // event store routes each landing batch (d2c role) and re-drives dead
  // letters (api role).
  std::unique_ptr<kafka::Producer> producer_;
  d2c::KafkaEndpointSink endpoint_sink_;
  d2c::EventStore event_store_;
  d2c::EventReader event_reader_;
  c2d::Store c2d_store_;
  c2d::Metrics c2d_metrics_;
  c2d::FeedbackMetrics feedback_metrics_;
  c2d::FeedbackStore feedback_store_;
  c2d::WakeHub wake_hub_;
  c2d::WakeHub feedback_hub_;
  c2d::DeviceC2d device_c2d_;
  // The api role.
  std::unique_ptr<device::DeviceMessagingService> device_service_;
  std::unique_ptr<c2d::CloudToDeviceService> c2d_service_;
  std::unique_ptr<events::EventsService> events_service_;
  std::unique_ptr<registry::LifecyclePublisher> lifecycle_;
  std::unique_ptr<c2d::FeedbackService> feedback_service_;
  std::unique_ptr<audit::AuditService> audit_service_;
  std::vector<grpc::Service*> services_;
  std::unique_ptr<c2d::Sweeper> sweeper_;
  std::unique_ptr<GrpcServer> server_;
  // Last, so that even without Shutdown it stops (its destructor) before
  // any member it calls back into goes. Members attach in the constructor's
  // body.
  pg::Listener listener_;
};

}  // namespace ferry
