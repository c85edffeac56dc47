#include "tests/support/ferryd.h"

#include <regex>
#include <stdexcept>

#include "core/auth/connection_string.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace ferry::testing {

FerrydProcess::FerrydProcess(const std::string& postgres_url,
                             const std::vector<std::string>& extra_serve_args,
                             const std::map<std::string, std::string>& env) {
  std::vector<std::string> args = {"--postgres-url",
                                   postgres_url,
                                   "serve",
                                   "--grpc-listen",
                                   "127.0.0.1:0",
                                   "--metrics-listen",
                                   "127.0.0.1:0",
                                   "--readiness-interval-ms",
                                   "100"};
  args.insert(args.end(), extra_serve_args.begin(), extra_serve_args.end());
  std::map<std::string, std::string> full_env = {{"FERRY_OWNER_KEY", kE2eOwnerKey}};
  for (const auto& [k, v] : env) full_env[k] = v;
  process_ = std::make_unique<ChildProcess>(BinPath("ferryd"), args, full_env);
  const auto grpc = process_->WaitForLine(std::regex("grpc_port=(\\d+)"), std::chrono::seconds(20));
  const auto metrics =
      process_->WaitForLine(std::regex("metrics_port=(\\d+)"), std::chrono::seconds(1));
  if (!grpc || !metrics) {
    throw std::runtime_error("ferryd did not start; its output:\n" + process_->Output());
  }
  grpc_port_ = std::stoi(*grpc);
  metrics_port_ = std::stoi(*metrics);
}

std::string FerrydProcess::grpc_address() const {
  return "127.0.0.1:" + std::to_string(grpc_port_);
}

std::shared_ptr<grpc::Channel> FerrydProcess::Channel() const {
  return grpc::CreateChannel(grpc_address(), grpc::InsecureChannelCredentials());
}

std::string FerrydProcess::OwnerConnectionString() {
  return std::string("HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=") +
         kE2eOwnerKey;
}

std::string FerrydProcess::OwnerToken() {
  const auto expiry = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count() +
                      3600;
  return auth::ParseConnectionString(OwnerConnectionString()).Token(expiry);
}

std::map<std::string, std::string> FerrydProcess::CtlEnv() const {
  return {{"FERRY_CONNECTION_STRING", OwnerConnectionString()}, {"FERRY_ENDPOINT", grpc_address()}};
}

std::string HealthStatus(const std::shared_ptr<grpc::Channel>& channel,
                         const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  const grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return "error: " + s.error_message();
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
}

}  // namespace ferry::testing
