#include "services/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <mutex>

#include "core/error.h"

namespace ferry {

inline constexpr char kLivenessService[] = "liveness";

GrpcServer::GrpcServer(const GrpcServerOptions& options,
                       const std::vector<grpc::Service*>& services) {
  grpc::EnableDefaultHealthCheckService(true);
  if (options.reflection) {
    // A process-wide registration: once, or the service is added twice.
    static std::once_flag once;
    std::call_once(once, [] { grpc::reflection::InitProtoReflectionServerBuilderPlugin(); });
  }
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &port_);
  for (grpc::Service* service : services) builder.RegisterService(service);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    throw Error(Reason::kServiceUnavailable,
                "cannot listen for gRPC on " + options.listen +
                    " (address in use by another process, or not an address of this host)");
  }
  health_ = server_->GetHealthCheckService();
  health_->SetServingStatus(kLivenessService, true);
  health_->SetServingStatus("", false);
}

GrpcServer::~GrpcServer() {
  if (server_) Shutdown(std::chrono::milliseconds(0));
}

void GrpcServer::SetLive(bool live) { health_->SetServingStatus(kLivenessService, live); }

void GrpcServer::SetReady(bool ready) { health_->SetServingStatus("", ready); }

void GrpcServer::Shutdown(std::chrono::milliseconds grace) {
  if (!server_) return;
  health_->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
  server_.reset();
}

}  // namespace ferry
