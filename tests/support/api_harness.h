#pragma once

#include <memory>

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include "core/executor.h"
#include "core/pg/pool.h"
#include "services/registry/device_store.h"
#include "services/registry/registry_service.h"
#include "services/rpc/runtime.h"
#include "services/server.h"
#include "tests/support/fake_clock.h"

namespace ferry::testing {

// Ferry's API services in this process on a free port, against the given
// (migrated) database, with a fake clock: for tests of RPC behaviour that do
// not need ferryd as a process.
class ApiHarness final {
 public:
  explicit ApiHarness(const std::string& postgres_url);
  ~ApiHarness();

  [[nodiscard]] std::shared_ptr<grpc::Channel> Channel() const;
  FakeClock& clock() { return clock_; }
  prometheus::Registry& metrics() { return *registry_; }
  pg::Pool& pool() { return pool_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  FakeClock clock_;
  pg::Pool pool_;
  Executor executor_{4};
  rpc::AllowAllAuthorizer authorizer_;
  rpc::RpcRuntime runtime_;
  registry::DeviceStore devices_;
  registry::RegistryService registry_service_;
  std::unique_ptr<GrpcServer> server_;
};

// The `ferry-error-reason` trailing metadata of a finished call.
[[nodiscard]] std::string ErrorReason(const grpc::ClientContext& ctx);

}  // namespace ferry::testing
