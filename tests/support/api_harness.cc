#include "tests/support/api_harness.h"

#include "core/auth/sas.h"
#include "services/registry/device_rules.h"
#include "services/rpc/status.h"
#include "tests/support/wait.h"

namespace ferry::testing {

ApiHarness::ApiHarness(const std::string& postgres_url)
    : pool_(pg::PoolOptions{.url = postgres_url, .max_size = 4}, registry_.get()) {
  kafka_.CreateTopic("ferry.d2c", 4);
  ComponentOptions o;
  o.hub_host = kHubHost;
  o.hub_name = "test-hub";
  o.kafka_brokers = kafka_.bootstrap();
  o.endpoint_ack_timeout = std::chrono::seconds(10);
  o.rpc_workers = 4;
  o.c2d_default_ttl = std::chrono::hours(1);
  o.sweeper = c2d::SweeperOptions{};
  components_ = std::make_unique<Components>(o, pool_, *registry_, clock_);
  (void)components_->policies().EnsureOwner(access::kOwnerPolicyName, kOwnerKey,
                                            registry::NewSymmetricKey(), clock_.Now());
  components_->Start(GrpcServerOptions{.listen = "127.0.0.1:0", .reflection = false}, false);
  if (!WaitFor([this] { return listener().connected(); }, std::chrono::seconds(10))) {
    throw std::runtime_error("the LISTEN connection did not come up");
  }
  components_->server().SetReady(true);
}

ApiHarness::~ApiHarness() {
  components_->Shutdown(std::chrono::seconds(5));
  components_.reset();
}

int ApiHarness::port() const {
  return components_->server().port();
}

std::shared_ptr<grpc::Channel> ApiHarness::Channel() const {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port()),
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
