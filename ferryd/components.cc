#include "ferryd/components.h"

namespace ferry {

Components::Components(const ComponentOptions& options, pg::Pool& pool,
                       prometheus::Registry& registry, const Clock& clock)
    : options_(options),
      credential_store_(pool),
      credentials_(credential_store_, registry),
      route_source_(pool),
      sas_(options_.hub_host, credentials_, clock, options_.auth_clock_skew),
      executor_(options_.rpc_workers),
      runtime_(
          executor_,
          options_.insecure_no_auth ? static_cast<rpc::Authorizer&>(allow_all_) : sas_authorizer_,
          registry),
      devices_(pool),
      registry_service_(runtime_, devices_, clock),
      policies_(pool),
      policy_service_(runtime_, policies_, clock),
      routes_(pool),
      routing_service_(runtime_, routes_, options_.d2c_topic, clock),
      producer_(std::make_unique<kafka::Producer>(options_.kafka_brokers, options_.kafka_properties,
                                                  registry)),
      endpoint_sink_(*producer_, options_.endpoint_ack_timeout),
      event_store_(pool),
      event_reader_(pool),
      c2d_store_(pool, options_.c2d_limits, options_.c2d_max_queue_depth, options_.feedback),
      c2d_metrics_(registry),
      feedback_metrics_(registry),
      feedback_store_(pool, options_.feedback_max_delivery_count),
      device_c2d_(runtime_, c2d_store_, wake_hub_, executor_, clock, c2d_metrics_,
                  feedback_metrics_),
      listener_(pool, registry) {
  credentials_.Attach(listener_);
  route_source_.Attach(listener_);
  runtime_.SetThrottles(options_.throttles);
  devices_.OnChange([this](const std::string& s) { credentials_.Invalidate(s); });
  policies_.OnChange([this](const std::string& s) { credentials_.Invalidate(s); });
  event_store_.SetRouting([this] { return route_source_.Current(); }, &endpoint_sink_,
                          options_.hub_name);
  wake_hub_.Attach(listener_);
  feedback_hub_.Attach(listener_, "ferry_feedback");
  if (options_.api) {
    device_service_ = std::make_unique<device::DeviceMessagingService>(
        runtime_, *producer_, options_.d2c_topic, clock, &device_c2d_);
    c2d_service_ = std::make_unique<c2d::CloudToDeviceService>(
        runtime_, c2d_store_, clock, c2d_metrics_, feedback_metrics_, options_.c2d_default_ttl);
    events_service_ = std::make_unique<events::EventsService>(runtime_, event_store_, event_reader_,
                                                              producer_.get(), options_.d2c_topic,
                                                              options_.d2c_group, clock, registry);
    lifecycle_ = std::make_unique<registry::LifecyclePublisher>(
        pool, endpoint_sink_, options_.d2c_topic, options_.hub_name, registry);
    lifecycle_->Attach(listener_);
    feedback_service_ = std::make_unique<c2d::FeedbackService>(
        runtime_, feedback_store_, feedback_hub_, executor_, clock, feedback_metrics_);
    audit_service_ = std::make_unique<audit::AuditService>(runtime_, pool);
    services_ = {&registry_service_,      &policy_service_,      device_service_.get(),
                 &routing_service_,       events_service_.get(), c2d_service_.get(),
                 feedback_service_.get(), audit_service_.get()};
  }
  if (options_.sweeper) {
    sweeper_ = std::make_unique<c2d::Sweeper>(pool, c2d_store_, feedback_store_, clock,
                                              *options_.sweeper, registry, feedback_metrics_);
  }
}

Components::~Components() {
  Shutdown(std::chrono::milliseconds(0));
}

void Components::Start(const GrpcServerOptions& server, bool start_sweeper) {
  listener_.Start();
  if (lifecycle_) lifecycle_->Start();
  if (sweeper_ && start_sweeper) sweeper_->Start();
  server_ = std::make_unique<GrpcServer>(server, services_);
}

void Components::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (lifecycle_) lifecycle_->Stop();
  if (sweeper_) sweeper_->Stop();
  wake_hub_.Shutdown();  // waiting receives answer now, streams end
  feedback_hub_.Shutdown();
  if (server_) server_->Shutdown(grace);
  executor_.Stop();
  listener_.Stop();
}

}  // namespace ferry
