#include "tools/ferryctl/ferryctl.h"

#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/ferryctl/audit_commands.h"
#include "tools/ferryctl/c2d_commands.h"
#include "tools/ferryctl/d2c_commands.h"
#include "tools/ferryctl/device_commands.h"
#include "tools/ferryctl/policy_commands.h"
#include "tools/ferryctl/routing_commands.h"
#include "tools/ferryctl/session.h"

namespace ferry::ctl {
namespace {

class HealthClient final : public Session {
 public:
  using Session::Session;

  int Health() {
    std::vector<std::vector<std::string>> rows;
    bool all = true;
    for (const std::string service : {"liveness", ""}) {
      grpc::health::v1::HealthCheckRequest req;
      req.set_service(service);
      grpc::health::v1::HealthCheckResponse resp;
      const grpc::Status s = health_->Check(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      const std::string status =
          grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
      all = all && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
      rows.push_back({service.empty() ? "readiness" : service, status});
    }
    if (options_.json) {
      out_ << "{\"liveness\":\"" << rows[0][1] << "\",\"readiness\":\"" << rows[1][1] << "\"}\n";
    } else {
      Table(out_, {"CHECK", "STATUS"}, rows);
    }
    return all ? kExitOk : kExitUnavailable;
  }

 private:
  std::unique_ptr<grpc::health::v1::Health::Stub> health_ =
      grpc::health::v1::Health::NewStub(channel_);
};

constexpr char kRootFooter[] =
    "Output: tables for people; --json prints one JSON object per line (proto field names) "
    "instead.\n"
    "Exit codes:\n"
    "  0  done\n"
    "  1  Ferry refused or failed the call (the IoT Hub reason is printed, e.g. "
    "DeviceAlreadyExists,\n"
    "     PermissionDenied), or some lines of `devices import` failed\n"
    "  2  usage error: unknown command or flag, bad argument, a file that cannot be read or "
    "written\n"
    "  3  Ferry unreachable, UNAVAILABLE (e.g. its database is down), past --timeout, or not "
    "ready\n"
    "     (health)\n"
    "  4  not found: DeviceNotFound, PolicyNotFound, RouteNotFound, EndpointNotFound,\n"
    "     EnrichmentNotFound, MessageNotFound\n"
    "Example: ferryctl devices create thermostat-7";

}  // namespace

std::unique_ptr<CLI::App> MakeApp(Options& options, std::ostream& out, std::ostream& err,
                                  int& code) {
  auto app = std::make_unique<CLI::App>("ferryctl: operate a Ferry hub over gRPC");
  app->footer(kRootFooter);
  app->require_subcommand(1);
  // Global options also after the command: `ferryctl devices list --json`.
  app->fallthrough();
  app->add_option("-e,--endpoint", options.endpoint, "Ferry gRPC address")
      ->envname("FERRY_ENDPOINT")
      ->capture_default_str();
  app->add_flag("--json", options.json, "Print JSON (one object per line) instead of tables");
  app->add_option("--timeout", options.timeout_seconds, "Seconds per call")
      ->check(SecondsIn(0.001, 86400))
      ->capture_default_str();
  app->add_option("--connection-string", options.connection_string,
                  "IoT Hub connection string of a policy or a device; tokens are signed with it")
      ->envname("FERRY_CONNECTION_STRING");
  app->add_option("--token-ttl", options.token_ttl_seconds,
                  "Lifetime of the tokens signed, seconds")
      ->check(SecondsIn(1, 366 * 86400))
      ->envname("FERRY_TOKEN_TTL")
      ->capture_default_str();
  app->add_flag("--tls", options.tls, "Use TLS with the system's CA certificates")
      ->envname("FERRY_TLS");
  app->add_option("--tls-ca-file", options.tls_ca_file, "Use TLS, trusting this PEM CA bundle")
      ->envname("FERRY_TLS_CA_FILE");
  app->add_option("--tls-cert-file", options.tls_cert_file, "Client certificate (mutual TLS)")
      ->envname("FERRY_TLS_CLIENT_CERT_FILE");
  app->add_option("--tls-key-file", options.tls_key_file, "Client private key (mutual TLS)")
      ->envname("FERRY_TLS_CLIENT_KEY_FILE");

  AddDeviceCommands(*app, options, out, err, code);
  AddPolicyCommands(*app, options, out, err, code);
  AddRoutingCommands(*app, options, out, err, code);
  AddD2cCommands(*app, options, out, err, code);
  AddC2dCommands(*app, options, out, err, code);
  AddAuditCommands(*app, options, out, err, code);

  const auto client = [&options, &out, &err] { return HealthClient(options, out, err); };

  app->add_subcommand("health", "Liveness and readiness of a ferryd (no token needed)")
      ->footer(
          "Exits 3 when ferryd does not answer or is not ready.\n"
          "Example: ferryctl health --endpoint 127.0.0.1:50051")
      ->callback([client, &code] { code = client().Health(); });
  return app;
}

int Run(int argc, char** argv, std::ostream& out, std::ostream& err) {
  Options options;
  int code = kExitOk;
  const std::unique_ptr<CLI::App> app = MakeApp(options, out, err, code);
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app->exit(e, out, err);
    return rc == 0 ? kExitOk : kExitUsage;
  } catch (const std::exception& e) {
    err << "ferryctl: " << e.what() << "\n";
    return kExitUsage;
  }
  return code;
}

}  // namespace ferry::ctl
