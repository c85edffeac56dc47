#include "services/server.h"

#include <fstream>
#include <mutex>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_builder.h>

#include "core/error.h"

namespace ferry {

namespace {

constexpr char kLivenessService[] = "liveness";

std::shared_ptr<grpc::ServerCredentials> Credentials(const GrpcServerOptions& o) {
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    throw Error(Reason::kArgumentInvalid, "--tls-cert-file and --tls-key-file go together");
  }
  if (o.tls_cert_file.empty()) {
    if (!o.tls_client_ca_file.empty()) {
      throw Error(Reason::kArgumentInvalid, "--tls-client-ca-file needs --tls-cert-file");
    }
    if (!o.allow_plaintext && !IsLoopback(o.listen)) {
      throw Error(Reason::kArgumentInvalid,
                  "refusing plaintext gRPC on " + o.listen +
                      ": give --tls-cert-file and --tls-key-file, or --allow-plaintext");
    }
    return grpc::InsecureServerCredentials();
  }
  for (const std::string& f : {o.tls_cert_file, o.tls_key_file, o.tls_client_ca_file}) {
    if (!f.empty() && !std::ifstream(f)) {
      throw Error(Reason::kArgumentInvalid, "cannot read TLS file '" + f + "'");
    }
  }
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      o.tls_key_file, o.tls_cert_file, o.tls_client_ca_file, o.tls_reload_seconds);
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (!o.tls_client_ca_file.empty()) {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

}  // namespace

bool IsLoopback(const std::string& listen) {
  const auto colon = listen.rfind(':');
  const std::string host = listen.substr(0, colon == std::string::npos ? listen.size() : colon);
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]" ||
         host == "ipv4:127.0.0.1";
}

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
  // Bounded requests: the largest is a SendEventBatch of 256 KB of events;
  // metadata carries a SAS token.
  builder.SetMaxReceiveMessageSize(1 << 20);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 16 * 1024);
  builder.AddListeningPort(options.listen, Credentials(options), &port_);
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

void GrpcServer::SetLive(bool live) {
  health_->SetServingStatus(kLivenessService, live);
}

void GrpcServer::SetReady(bool ready) {
  health_->SetServingStatus("", ready);
}

void GrpcServer::Shutdown(std::chrono::milliseconds grace) {
  if (!server_) return;
  health_->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
  server_.reset();
}

}  // namespace ferry
