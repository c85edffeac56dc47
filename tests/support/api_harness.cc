#include "tests/support/api_harness.h"

#include "services/rpc/status.h"

namespace ferry::testing {

ApiHarness::ApiHarness(const std::string& postgres_url)
    : pool_(pg::PoolOptions{.url = postgres_url, .max_size = 4}, registry_.get()),
      runtime_(executor_, authorizer_, *registry_),
      devices_(pool_),
      registry_service_(runtime_, devices_, clock_) {
  server_ = std::make_unique<GrpcServer>(GrpcServerOptions{.listen = "127.0.0.1:0", .reflection = false},
                                         std::vector<grpc::Service*>{&registry_service_});
  server_->SetReady(true);
}

ApiHarness::~ApiHarness() {
  server_->Shutdown(std::chrono::seconds(5));
  executor_.Stop();
}

std::shared_ptr<grpc::Channel> ApiHarness::Channel() const {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                             grpc::InsecureChannelCredentials());
}

std::string ErrorReason(const grpc::ClientContext& ctx) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  const auto it = trailers.find(rpc::kReasonMetadataKey);
  return it == trailers.end() ? "" : std::string(it->second.data(), it->second.size());
}

}  // namespace ferry::testing
