#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "tests/support/process.h"

namespace ferry::testing {

// The owner key every FerrydProcess starts with (FERRY_OWNER_KEY).
inline constexpr char kE2eOwnerKey[] = "ZTJlLW93bmVyLWtleS1mb3ItZmVycnktdGVzdHMtMzI=";

// ferryd started as a process on free ports (port 0), as a user would start
// it, with FERRY_OWNER_KEY set (unless `env` sets it); waits for its
// "serving" log line.
class FerrydProcess final {
 public:
  // `extra_serve_args` go after `serve`. Throws if ferryd does not report
  // its ports within 20 s (its output is in the message).
  FerrydProcess(const std::string& postgres_url, const std::vector<std::string>& extra_serve_args,
                const std::map<std::string, std::string>& env = {});

  [[nodiscard]] int grpc_port() const { return grpc_port_; }
  [[nodiscard]] int metrics_port() const { return metrics_port_; }
  [[nodiscard]] std::string grpc_address() const;
  [[nodiscard]] std::shared_ptr<grpc::Channel> Channel() const;
  // The owner policy's connection string (hub host "localhost").
  [[nodiscard]] static std::string OwnerConnectionString();
  // An owner token valid for an hour, for direct gRPC calls.
  [[nodiscard]] static std::string OwnerToken();
  // Environment for ferryctl against this ferryd as the owner.
  [[nodiscard]] std::map<std::string, std::string> CtlEnv() const;
  ChildProcess& process() { return *process_; }

 private:
  std::unique_ptr<ChildProcess> process_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
};

// grpc.health.v1 Check of `service` ("" is readiness): "SERVING",
// "NOT_SERVING", or the call's error.
[[nodiscard]] std::string HealthStatus(const std::shared_ptr<grpc::Channel>& channel,
                                       const std::string& service);

}  // namespace ferry::testing
