#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server.h>

namespace ferry {

struct GrpcServerOptions {
  std::string listen = "127.0.0.1:50051";
  bool reflection = true;
};

// The process's gRPC server: the given services, gRPC's built-in
// grpc.health.v1.Health (service "liveness" and the default service, which is
// readiness), and server reflection unless turned off. Port reuse is off, so
// a port already taken fails loudly: the constructor throws
// ferry::Error(kServiceUnavailable) naming the address.
class GrpcServer final {
 public:
  GrpcServer(const GrpcServerOptions& options, const std::vector<grpc::Service*>& services);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  [[nodiscard]] int port() const { return port_; }
  void SetLive(bool live);
  void SetReady(bool ready);
  // Health goes NOT_SERVING for good, new calls are refused, in-flight calls
  // get until `grace` to finish and are cancelled after.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  std::unique_ptr<grpc::Server> server_;
  grpc::HealthCheckServiceInterface* health_ = nullptr;
  int port_ = 0;
};

}  // namespace ferry
