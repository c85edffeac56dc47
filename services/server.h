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
  // TLS: certificate chain and private key (PEM), re-read every
  // tls_reload_seconds when they change; with client_ca_file, clients must
  // present a certificate signed by it (mutual TLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  unsigned tls_reload_seconds = 10;
  // Without TLS, only a loopback address may be served unless this is set.
  bool allow_plaintext = false;
};

// Whether `listen` (host:port) is a loopback address.
[[nodiscard]] bool IsLoopback(const std::string& listen);

// The process's gRPC server: the given services, gRPC's built-in
// grpc.health.v1.Health (service "liveness" and the default service, which is
// readiness), and server reflection unless turned off. Port reuse is off, so
// a port already taken fails loudly: the constructor throws
// ferry::Error(kServiceUnavailable) naming the address. Plaintext on a
// non-loopback address without allow_plaintext throws
// ferry::Error(kArgumentInvalid).
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
