#include "tests/support/api_harness.h"

#include "core/auth/sas.h"
#include "services/registry/device_rules.h"
#include "services/rpc/status.h"
#include "tests/support/wait.h"

namespace ferry::testing {

ApiHarness::ApiHarness(const std::string& postgres_url)
    : pool_(pg::PoolOptions{.url = postgres_url, .max_size = 4}, registry_.get()),
      listener_(pool_, *registry_),
      credential_store_(pool_),
      cache_(credential_store_, *registry_),
      sas_(kHubHost, cache_, clock_),
      authorizer_(sas_),
      runtime_(executor_, authorizer_, *registry_),
      devices_(pool_),
      registry_service_(runtime_, devices_, clock_),
      policies_(pool_),
      policy_service_(runtime_, policies_, clock_),
      routes_(pool_),
      routing_service_(runtime_, routes_, "ferry.d2c", clock_) {
  devices_.OnChange([this](const std::string& s) { cache_.Invalidate(s); });
  policies_.OnChange([this](const std::string& s) { cache_.Invalidate(s); });
  (void)policies_.EnsureOwner(access::kOwnerPolicyName, kOwnerKey, registry::NewSymmetricKey(),
                              clock_.Now());
  cache_.Attach(listener_);
  route_source_.Attach(listener_);
  kafka_.CreateTopic("ferry.d2c", 4);
  producer_ = std::make_unique<kafka::Producer>(kafka_.bootstrap(),
                                                std::map<std::string, std::string>{}, *registry_);
  sink_ = std::make_unique<d2c::KafkaEndpointSink>(*producer_, std::chrono::seconds(10));
  lifecycle_ = std::make_unique<registry::LifecyclePublisher>(pool_, *sink_, "ferry.d2c",
                                                              "test-hub", *registry_);
  lifecycle_->Attach(listener_);
  wake_hub_.Attach(listener_);
  feedback_hub_.Attach(listener_, "ferry_feedback");
  listener_.Start();
  if (!WaitFor([this] { return listener_.connected(); }, std::chrono::seconds(10))) {
    throw std::runtime_error("the LISTEN connection did not come up");
  }
  lifecycle_->Start();
  event_store_.SetRouting([this] { return route_source_.Current(); }, sink_.get(), "test-hub");
  events_service_ = std::make_unique<events::EventsService>(runtime_, event_store_, event_reader_,
                                                            producer_.get(), "ferry.d2c",
                                                            "ferry-d2c", clock_, *registry_);
  device_c2d_ = std::make_unique<c2d::DeviceC2d>(runtime_, c2d_store_, wake_hub_, executor_, clock_,
                                                 c2d_metrics_, feedback_metrics_);
  c2d_service_ = std::make_unique<c2d::CloudToDeviceService>(
      runtime_, c2d_store_, clock_, c2d_metrics_, feedback_metrics_, std::chrono::hours(1));
  feedback_service_ = std::make_unique<c2d::FeedbackService>(
      runtime_, feedback_store_, feedback_hub_, executor_, clock_, feedback_metrics_);
  device_service_ = std::make_unique<device::DeviceMessagingService>(
      runtime_, *producer_, "ferry.d2c", clock_, device_c2d_.get());
  server_ = std::make_unique<GrpcServer>(
      GrpcServerOptions{.listen = "127.0.0.1:0", .reflection = false},
      std::vector<grpc::Service*>{&registry_service_, &policy_service_, device_service_.get(),
                                  &routing_service_, events_service_.get(), c2d_service_.get(),
                                  feedback_service_.get(), &audit_service_});
  server_->SetReady(true);
}

ApiHarness::~ApiHarness() {
  wake_hub_.Shutdown();
  feedback_hub_.Shutdown();
  server_->Shutdown(std::chrono::seconds(5));
  executor_.Stop();
  lifecycle_->Stop();
  device_service_.reset();
  events_service_.reset();
  c2d_service_.reset();
  feedback_service_.reset();
  lifecycle_.reset();
  sink_.reset();
  producer_.reset();
  listener_.Stop();
}

std::shared_ptr<grpc::Channel> ApiHarness::Channel() const {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                             grpc::InsecureChannelCredentials());
}

std::string ApiHarness::Token(const std::string& resource, const std::string& key,
                              std::optional<std::string> policy, std::chrono::seconds ttl) const {
  const auto expiry =
      std::chrono::duration_cast<std::chrono::seconds>((clock_.Now() + ttl).time_since_epoch())
          .count();
  if (policy) return auth::MakeSasToken(resource, key, expiry, *policy);
  return auth::MakeSasToken(resource, key, expiry);
}

std::string ApiHarness::OwnerToken() const {
  return Token(kHubHost, kOwnerKey, std::string(access::kOwnerPolicyName));
}

void ApiHarness::AsOwner(grpc::ClientContext& ctx) const {
  ctx.AddMetadata("authorization", OwnerToken());
}

std::string ErrorReason(const grpc::ClientContext& ctx) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  const auto it = trailers.find(rpc::kReasonMetadataKey);
  return it == trailers.end() ? "" : std::string(it->second.data(), it->second.size());
}

}  // namespace ferry::testing
