#include "tools/ferryctl/ferryctl.h"
#include "tools/ferryctl/session.h"
#include "tools/ferryctl/c2d_commands.h"
#include "tools/ferryctl/d2c_commands.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include "core/auth/authorizer.h"
#include "core/auth/connection_string.h"
#include "core/auth/sas.h"
#include "ferry/v1/access.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "ferry/v1/routing.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace ferry::ctl {
namespace {

v1::AccessPermission PermissionFromName(const std::string& name) {
  if (name == "RegistryRead") return v1::ACCESS_PERMISSION_REGISTRY_READ;
  if (name == "RegistryWrite") return v1::ACCESS_PERMISSION_REGISTRY_WRITE;
  if (name == "ServiceConnect") return v1::ACCESS_PERMISSION_SERVICE_CONNECT;
  if (name == "DeviceConnect") return v1::ACCESS_PERMISSION_DEVICE_CONNECT;
  throw CLI::ValidationError("--permissions",
                             "unknown permission '" + name +
                                 "' (RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect)");
}

std::string PermissionNames(const v1::Policy& p) {
  std::string out;
  for (const int perm : p.permissions()) {
    if (!out.empty()) out += ",";
    switch (perm) {
      case v1::ACCESS_PERMISSION_REGISTRY_READ: out += "RegistryRead"; break;
      case v1::ACCESS_PERMISSION_REGISTRY_WRITE: out += "RegistryWrite"; break;
      case v1::ACCESS_PERMISSION_SERVICE_CONNECT: out += "ServiceConnect"; break;
      case v1::ACCESS_PERMISSION_DEVICE_CONNECT: out += "DeviceConnect"; break;
      default: out += "?";
    }
  }
  return out;
}

v1::KeySlot SlotFromName(const std::string& slot) {
  return slot == "secondary" ? v1::KEY_SLOT_SECONDARY : v1::KEY_SLOT_PRIMARY;
}

std::string StatusName(v1::DeviceStatus s) {
  return s == v1::DEVICE_STATUS_DISABLED ? "Disabled" : "Enabled";
}

class Client final : public Session {
 public:
  Client(const Options& options, std::ostream& out, std::ostream& err) : Session(options, out, err) {}

  void PrintDevice(const v1::Device& d) const {
    if (options_.json) {
      out_ << Json(d) << "\n";
      return;
    }
    Table(out_, {"FIELD", "VALUE"},
          {{"device_id", d.device_id()},
           {"status", StatusName(d.status())},
           {"status_reason", d.status_reason().empty() ? "-" : d.status_reason()},
           {"status_update_time", Time(d.status_update_time())},
           {"generation_id", d.generation_id()},
           {"etag", d.etag()},
           {"primary_key", d.authentication().primary_key()},
           {"secondary_key", d.authentication().secondary_key()},
           {"connection_state",
            d.connection_state() == v1::CONNECTION_STATE_CONNECTED ? "Connected" : "Disconnected"},
           {"created_time", Time(d.created_time())}});
  }

  int Create(const std::string& id, const std::string& primary, const std::string& secondary,
             bool disabled, const std::string& reason) {
    v1::CreateDeviceRequest req;
    v1::Device* d = req.mutable_device();
    d->set_device_id(id);
    d->set_status(disabled ? v1::DEVICE_STATUS_DISABLED : v1::DEVICE_STATUS_ENABLED);
    d->set_status_reason(reason);
    d->mutable_authentication()->set_primary_key(primary);
    d->mutable_authentication()->set_secondary_key(secondary);
    v1::Device resp;
    const grpc::Status s = registry_->CreateDevice(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintDevice(resp);
    return kExitOk;
  }

  int Get(const std::string& id) {
    v1::GetDeviceRequest req;
    req.set_device_id(id);
    v1::Device resp;
    const grpc::Status s = registry_->GetDevice(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintDevice(resp);
    return kExitOk;
  }

  int List(int page_size, std::string page_token, bool one_page) {
    std::vector<std::vector<std::string>> rows;
    do {
      v1::ListDevicesRequest req;
      req.set_page_size(page_size);
      req.set_page_token(page_token);
      v1::ListDevicesResponse resp;
      const grpc::Status s = registry_->ListDevices(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      for (const v1::Device& d : resp.devices()) {
        if (options_.json) {
          out_ << Json(d) << "\n";
        } else {
          rows.push_back({d.device_id(), StatusName(d.status()), d.generation_id(), d.etag(),
                          d.status_reason().empty() ? "-" : d.status_reason()});
        }
      }
      page_token = resp.next_page_token();
    } while (!one_page && !page_token.empty());
    if (!options_.json) {
      Table(out_, {"DEVICE ID", "STATUS", "GENERATION", "ETAG", "REASON"}, rows);
      if (one_page && !page_token.empty()) out_ << "next page: --page-token " << page_token << "\n";
    }
    return kExitOk;
  }

  // Read, change, write with the etag read: a concurrent change is refused
  // (PreconditionFailed) rather than overwritten.
  int Update(const std::string& id, std::optional<bool> enabled,
             const std::optional<std::string>& reason, const std::string& primary,
             const std::string& secondary, const std::string& if_match) {
    v1::GetDeviceRequest get;
    get.set_device_id(id);
    v1::Device current;
    grpc::Status s = registry_->GetDevice(Context().get(), get, &current);
    if (!s.ok()) return Fail(s);
    v1::UpdateDeviceRequest req;
    v1::Device* d = req.mutable_device();
    d->set_device_id(id);
    d->set_status(enabled ? (*enabled ? v1::DEVICE_STATUS_ENABLED : v1::DEVICE_STATUS_DISABLED)
                          : current.status());
    d->set_status_reason(reason ? *reason : current.status_reason());
    d->mutable_authentication()->set_primary_key(primary);
    d->mutable_authentication()->set_secondary_key(secondary);
    req.set_if_match(if_match.empty() ? current.etag() : if_match);
    v1::Device resp;
    s = registry_->UpdateDevice(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintDevice(resp);
    return kExitOk;
  }

  int Delete(const std::string& id, const std::string& if_match) {
    v1::DeleteDeviceRequest req;
    req.set_device_id(id);
    req.set_if_match(if_match);
    v1::DeleteDeviceResponse resp;
    const grpc::Status s = registry_->DeleteDevice(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      v1::GetDeviceRequest deleted;
      deleted.set_device_id(id);
      out_ << Json(deleted) << "\n";
    } else {
      out_ << "deleted " << id << "\n";
    }
    return kExitOk;
  }

  int RegenerateDeviceKey(const std::string& id, const std::string& slot) {
    v1::RegenerateDeviceKeyRequest req;
    req.set_device_id(id);
    req.set_slot(SlotFromName(slot));
    v1::Device resp;
    const grpc::Status s = registry_->RegenerateDeviceKey(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintDevice(resp);
    return kExitOk;
  }

  // HostName=…;DeviceId=…;SharedAccessKey=… of a device, for the device or
  // its gateway.
  int DeviceConnectionString(const std::string& id, const std::string& slot) {
    v1::GetDeviceRequest req;
    req.set_device_id(id);
    v1::Device d;
    const grpc::Status s = registry_->GetDevice(Context().get(), req, &d);
    if (!s.ok()) return Fail(s);
    const std::string host = credentials_ ? credentials_->host_name : "localhost";
    const auth::ConnectionString cs{host, std::nullopt, id,
                                    slot == "secondary" ? d.authentication().secondary_key()
                                                        : d.authentication().primary_key()};
    out_ << cs.ToString() << "\n";
    return kExitOk;
  }

  void PrintPolicy(const v1::Policy& p) const {
    if (options_.json) {
      out_ << Json(p) << "\n";
      return;
    }
    Table(out_, {"FIELD", "VALUE"},
          {{"name", p.name()},
           {"permissions", PermissionNames(p)},
           {"primary_key", p.primary_key()},
           {"secondary_key", p.secondary_key()},
           {"created_time", Time(p.created_time())},
           {"updated_time", Time(p.updated_time())}});
  }

  int CreatePolicy(const std::string& name, const std::vector<std::string>& permissions,
                   const std::string& primary, const std::string& secondary) {
    v1::CreatePolicyRequest req;
    req.mutable_policy()->set_name(name);
    for (const auto& p : permissions) req.mutable_policy()->add_permissions(PermissionFromName(p));
    req.mutable_policy()->set_primary_key(primary);
    req.mutable_policy()->set_secondary_key(secondary);
    v1::Policy resp;
    const grpc::Status s = policies_->CreatePolicy(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintPolicy(resp);
    return kExitOk;
  }

  int GetPolicy(const std::string& name) {
    v1::GetPolicyRequest req;
    req.set_name(name);
    v1::Policy resp;
    const grpc::Status s = policies_->GetPolicy(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintPolicy(resp);
    return kExitOk;
  }

  int ListPolicies() {
    v1::ListPoliciesRequest req;
    v1::ListPoliciesResponse resp;
    const grpc::Status s = policies_->ListPolicies(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : resp.policies()) {
      if (options_.json) {
        out_ << Json(p) << "\n";
      } else {
        rows.push_back({p.name(), PermissionNames(p)});
      }
    }
    if (!options_.json) Table(out_, {"NAME", "PERMISSIONS"}, rows);
    return kExitOk;
  }

  int UpdatePolicy(const std::string& name, const std::vector<std::string>& permissions) {
    v1::UpdatePolicyRequest req;
    req.mutable_policy()->set_name(name);
    for (const auto& p : permissions) req.mutable_policy()->add_permissions(PermissionFromName(p));
    v1::Policy resp;
    const grpc::Status s = policies_->UpdatePolicy(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintPolicy(resp);
    return kExitOk;
  }

  int DeletePolicy(const std::string& name) {
    v1::DeletePolicyRequest req;
    req.set_name(name);
    v1::DeletePolicyResponse resp;
    const grpc::Status s = policies_->DeletePolicy(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (!options_.json) out_ << "deleted policy " << name << "\n";
    return kExitOk;
  }

  int RegeneratePolicyKey(const std::string& name, const std::string& slot) {
    v1::RegeneratePolicyKeyRequest req;
    req.set_name(name);
    req.set_slot(SlotFromName(slot));
    v1::Policy resp;
    const grpc::Status s = policies_->RegeneratePolicyKey(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintPolicy(resp);
    return kExitOk;
  }

  // Prints a SAS token; with `device` and a policy connection string, one
  // scoped to that device (a policy with DeviceConnect acting for it).
  int Token(const std::string& device) const {
    if (!credentials_) {
      err_ << "ferryctl: token needs FERRY_CONNECTION_STRING or --connection-string\n";
      return kExitUsage;
    }
    const std::int64_t expiry = NowSeconds() + options_.token_ttl_seconds;
    if (!device.empty() && credentials_->key_name) {
      out_ << auth::MakeSasToken(auth::DeviceResource(credentials_->host_name, device),
                                 credentials_->key, expiry, *credentials_->key_name)
           << "\n";
    } else {
      out_ << credentials_->Token(expiry) << "\n";
    }
    return kExitOk;
  }

  int CreateEndpoint(const std::string& name, const std::string& topic) {
    v1::CreateEndpointRequest req;
    req.mutable_endpoint()->set_name(name);
    req.mutable_endpoint()->set_kind(v1::ENDPOINT_KIND_KAFKA);
    req.mutable_endpoint()->set_kafka_topic(topic);
    v1::Endpoint resp;
    const grpc::Status s = routing_->CreateEndpoint(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      out_ << Json(resp) << "\n";
    } else {
      out_ << "created endpoint " << resp.name() << " -> kafka topic " << resp.kafka_topic() << "\n";
    }
    return kExitOk;
  }

  int ListEndpoints() {
    v1::ListEndpointsResponse resp;
    const grpc::Status s = routing_->ListEndpoints(Context().get(), v1::ListEndpointsRequest(), &resp);
    if (!s.ok()) return Fail(s);
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : resp.endpoints()) {
      if (options_.json) {
        out_ << Json(e) << "\n";
      } else {
        rows.push_back({e.name(), e.kind() == v1::ENDPOINT_KIND_KAFKA ? "kafka" : "event store",
                        e.kafka_topic().empty() ? "-" : e.kafka_topic()});
      }
    }
    if (!options_.json) Table(out_, {"ENDPOINT", "KIND", "TOPIC"}, rows);
    return kExitOk;
  }

  int DeleteEndpoint(const std::string& name) {
    v1::DeleteEndpointRequest req;
    req.set_name(name);
    v1::DeleteEndpointResponse resp;
    const grpc::Status s = routing_->DeleteEndpoint(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (!options_.json) out_ << "deleted endpoint " << name << "\n";
    return kExitOk;
  }

  int SaveRoute(bool create, const std::string& name, const std::string& condition,
                const std::string& endpoint, bool disabled, bool lifecycle) {
    v1::Route r;
    r.set_name(name);
    r.set_condition(condition);
    r.set_endpoint(endpoint);
    r.set_enabled(!disabled);
    r.set_source(lifecycle ? v1::ROUTE_SOURCE_DEVICE_LIFECYCLE_EVENTS : v1::ROUTE_SOURCE_DEVICE_MESSAGES);
    v1::Route resp;
    grpc::Status s;
    if (create) {
      v1::CreateRouteRequest req;
      *req.mutable_route() = r;
      s = routing_->CreateRoute(Context().get(), req, &resp);
    } else {
      v1::UpdateRouteRequest req;
      *req.mutable_route() = r;
      s = routing_->UpdateRoute(Context().get(), req, &resp);
    }
    if (!s.ok()) return Fail(s);
    PrintRoutes({resp});
    return kExitOk;
  }

  void PrintRoutes(const std::vector<v1::Route>& routes) const {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : routes) {
      if (options_.json) {
        out_ << Json(r) << "\n";
      } else {
        rows.push_back({r.name(), r.enabled() ? "yes" : "no",
                        r.source() == v1::ROUTE_SOURCE_DEVICE_LIFECYCLE_EVENTS ? "lifecycle" : "messages",
                        r.endpoint(), r.condition().empty() ? "true" : r.condition()});
      }
    }
    if (!options_.json) Table(out_, {"ROUTE", "ENABLED", "SOURCE", "ENDPOINT", "CONDITION"}, rows);
  }

  int ListRoutes() {
    v1::ListRoutesResponse resp;
    const grpc::Status s = routing_->ListRoutes(Context().get(), v1::ListRoutesRequest(), &resp);
    if (!s.ok()) return Fail(s);
    PrintRoutes({resp.routes().begin(), resp.routes().end()});
    return kExitOk;
  }

  int DeleteRoute(const std::string& name) {
    v1::DeleteRouteRequest req;
    req.set_name(name);
    v1::DeleteRouteResponse resp;
    const grpc::Status s = routing_->DeleteRoute(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (!options_.json) out_ << "deleted route " << name << "\n";
    return kExitOk;
  }

  int SetFallback(bool enabled) {
    v1::SetFallbackRequest req;
    req.set_enabled(enabled);
    v1::RoutingSettings resp;
    const grpc::Status s = routing_->SetFallback(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    out_ << (options_.json ? Json(resp) : std::string("fallback ") + (resp.fallback_enabled() ? "on" : "off"))
         << "\n";
    return kExitOk;
  }

  // Tries a condition (or, with an empty condition, every route) on a sample.
  int TestRoutes(const std::string& condition, const std::string& body,
                 const std::string& content_type, const std::vector<std::string>& properties) {
    v1::SampleMessage sample;
    sample.mutable_message()->set_body(body);
    sample.mutable_message()->set_content_type(content_type);
    if (!content_type.empty()) sample.mutable_message()->set_content_encoding("utf-8");
    for (const auto& kv : properties) {
      const auto eq = kv.find('=');
      (*sample.mutable_message()->mutable_properties())[kv.substr(0, eq)] =
          eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    if (!condition.empty()) {
      v1::TestRouteRequest req;
      req.set_condition(condition);
      *req.mutable_sample() = sample;
      v1::TestRouteResponse resp;
      const grpc::Status s = routing_->TestRoute(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      out_ << (options_.json ? Json(resp) : v1::TestResult_Name(resp.result())) << "\n";
      return kExitOk;
    }
    v1::TestAllRoutesRequest req;
    *req.mutable_sample() = sample;
    v1::TestAllRoutesResponse resp;
    const grpc::Status s = routing_->TestAllRoutes(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      out_ << Json(resp) << "\n";
    } else {
      out_ << "matched routes: " << resp.matched_routes_size() << "\n";
      for (const auto& r : resp.matched_routes()) out_ << "  " << r << "\n";
      out_ << "endpoints:";
      for (const auto& e : resp.endpoints()) out_ << " " << e;
      out_ << (resp.fallback_applies() ? " (fallback)" : "") << "\n";
    }
    return kExitOk;
  }

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
  std::unique_ptr<v1::Registry::Stub> registry_ = v1::Registry::NewStub(channel_);
  std::unique_ptr<v1::AccessPolicies::Stub> policies_ = v1::AccessPolicies::NewStub(channel_);
  std::unique_ptr<v1::Routing::Stub> routing_ = v1::Routing::NewStub(channel_);
  std::unique_ptr<grpc::health::v1::Health::Stub> health_ = grpc::health::v1::Health::NewStub(channel_);
};

}  // namespace

int Run(int argc, char** argv, std::ostream& out, std::ostream& err) {
  Options options;
  CLI::App app{"ferryctl: operate a Ferry hub over gRPC"};
  app.footer(
      "Exit codes: 0 done, 1 refused by Ferry (reason printed), 2 usage error, 3 Ferry "
      "unreachable or not ready.\nExample: ferryctl devices create thermostat-7");
  app.require_subcommand(1);
  app.add_option("-e,--endpoint", options.endpoint, "Ferry gRPC address")
      ->envname("FERRY_ENDPOINT")
      ->capture_default_str();
  app.add_flag("--json", options.json, "Print JSON (one object per line) instead of tables");
  app.add_option("--timeout", options.timeout_seconds, "Seconds per call")->capture_default_str();
  app.add_option("--connection-string", options.connection_string,
                 "IoT Hub connection string of a policy or a device; tokens are signed with it")
      ->envname("FERRY_CONNECTION_STRING");
  app.add_option("--token-ttl", options.token_ttl_seconds, "Lifetime of the tokens signed, seconds")
      ->envname("FERRY_TOKEN_TTL")
      ->capture_default_str();
  app.add_flag("--tls", options.tls, "Use TLS with the system's CA certificates")
      ->envname("FERRY_TLS");
  app.add_option("--tls-ca-file", options.tls_ca_file, "Use TLS, trusting this PEM CA bundle")
      ->envname("FERRY_TLS_CA_FILE");
  app.add_option("--tls-cert-file", options.tls_cert_file, "Client certificate (mutual TLS)")
      ->envname("FERRY_TLS_CLIENT_CERT_FILE");
  app.add_option("--tls-key-file", options.tls_key_file, "Client private key (mutual TLS)")
      ->envname("FERRY_TLS_CLIENT_KEY_FILE");

  int code = kExitOk;
  std::optional<Client> client;
  auto connect = [&]() -> Client& {
    if (!client) client.emplace(options, out, err);
    return *client;
  };

  CLI::App* devices = app.add_subcommand("devices", "Device identity registry")
                          ->footer("Example: ferryctl devices list");
  devices->require_subcommand(1);

  std::string id, primary, secondary, reason, if_match, page_token;
  bool disabled = false;
  int page_size = 0;
  bool one_page = false;

  CLI::App* create = devices->add_subcommand("create", "Register a device")
                         ->footer("Example: ferryctl devices create thermostat-7 --disabled "
                                  "--status-reason 'not installed yet'");
  create->add_option("device-id", id, "Device id (case-sensitive)")->required();
  create->add_option("--primary-key", primary, "Base64 key (generated when omitted)");
  create->add_option("--secondary-key", secondary, "Base64 key (generated when omitted)");
  create->add_flag("--disabled", disabled, "Create the device disabled");
  create->add_option("--status-reason", reason, "Why (at most 128 characters)");
  create->callback([&] { code = connect().Create(id, primary, secondary, disabled, reason); });

  CLI::App* get = devices->add_subcommand("get", "Show one device, keys included")
                      ->footer("Example: ferryctl devices get thermostat-7 --json");
  get->add_option("device-id", id, "Device id")->required();
  get->callback([&] { code = connect().Get(id); });

  CLI::App* list = devices->add_subcommand("list", "List devices in id order (all pages)")
                       ->footer("Example: ferryctl devices list --page-size 500");
  list->add_option("--page-size", page_size, "Devices per call, 1 to 1000 (default 100)");
  list->add_option("--page-token", page_token, "Start after a previous page (implies --one-page)");
  list->add_flag("--one-page", one_page, "Print one page only, with the next page token");
  list->callback([&] {
    code = connect().List(page_size, page_token, one_page || !page_token.empty());
  });

  std::optional<std::string> update_reason;
  bool enable = false, disable = false;
  CLI::App* update = devices->add_subcommand("update", "Change status, reason or keys")
                         ->footer("Example: ferryctl devices update thermostat-7 --disable "
                                  "--status-reason 'stolen'");
  update->add_option("device-id", id, "Device id")->required();
  auto* en = update->add_flag("--enable", enable, "Enable the device");
  update->add_flag("--disable", disable, "Disable the device")->excludes(en);
  update->add_option("--status-reason", update_reason, "Why");
  update->add_option("--primary-key", primary, "New base64 primary key");
  update->add_option("--secondary-key", secondary, "New base64 secondary key");
  update->add_option("--if-match", if_match, "Refuse unless the device's etag is this");
  update->callback([&] {
    std::optional<bool> enabled;
    if (enable) enabled = true;
    if (disable) enabled = false;
    code = connect().Update(id, enabled, update_reason, primary, secondary, if_match);
  });

  CLI::App* del = devices->add_subcommand("delete", "Delete a device")
                      ->footer("Example: ferryctl devices delete thermostat-7");
  del->add_option("device-id", id, "Device id")->required();
  del->add_option("--if-match", if_match, "Refuse unless the device's etag is this");
  del->callback([&] { code = connect().Delete(id, if_match); });

  std::string slot = "primary";
  CLI::App* regen = devices->add_subcommand("regenerate-key", "Give a device a new random key")
                        ->footer("Example: ferryctl devices regenerate-key thermostat-7 --slot secondary");
  regen->add_option("device-id", id, "Device id")->required();
  regen->add_option("--slot", slot, "primary or secondary")
      ->check(CLI::IsMember({"primary", "secondary"}))
      ->capture_default_str();
  regen->callback([&] { code = connect().RegenerateDeviceKey(id, slot); });

  CLI::App* devcs = devices->add_subcommand("connection-string", "Print a device's connection string")
                        ->footer("Example: ferryctl devices connection-string thermostat-7");
  devcs->add_option("device-id", id, "Device id")->required();
  devcs->add_option("--slot", slot, "primary or secondary")
      ->check(CLI::IsMember({"primary", "secondary"}))
      ->capture_default_str();
  devcs->callback([&] { code = connect().DeviceConnectionString(id, slot); });

  CLI::App* policies = app.add_subcommand("policies", "Shared access policies (needs an owner policy)")
                           ->footer("Example: ferryctl policies list");
  policies->require_subcommand(1);
  std::string policy_name;
  std::vector<std::string> permissions;
  auto add_permissions = [&](CLI::App* cmd) {
    cmd->add_option("--permissions", permissions,
                    "Comma-separated: RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect")
        ->delimiter(',')
        ->required();
  };
  CLI::App* pcreate = policies->add_subcommand("create", "Create a policy")
                          ->footer("Example: ferryctl policies create backend --permissions "
                                   "ServiceConnect,RegistryRead");
  pcreate->add_option("name", policy_name, "Policy name")->required();
  add_permissions(pcreate);
  pcreate->add_option("--primary-key", primary, "Base64 key (generated when omitted)");
  pcreate->add_option("--secondary-key", secondary, "Base64 key (generated when omitted)");
  pcreate->callback([&] { code = connect().CreatePolicy(policy_name, permissions, primary, secondary); });
  CLI::App* pget = policies->add_subcommand("get", "Show a policy with its keys")
                       ->footer("Example: ferryctl policies get iothubowner");
  pget->add_option("name", policy_name, "Policy name")->required();
  pget->callback([&] { code = connect().GetPolicy(policy_name); });
  policies->add_subcommand("list", "List policies")
      ->footer("Example: ferryctl policies list --json")
      ->callback([&] { code = connect().ListPolicies(); });
  CLI::App* pupdate = policies->add_subcommand("update", "Replace a policy's permissions")
                          ->footer("Example: ferryctl policies update backend --permissions ServiceConnect");
  pupdate->add_option("name", policy_name, "Policy name")->required();
  add_permissions(pupdate);
  pupdate->callback([&] { code = connect().UpdatePolicy(policy_name, permissions); });
  CLI::App* pdelete = policies->add_subcommand("delete", "Delete a policy")
                          ->footer("Example: ferryctl policies delete backend");
  pdelete->add_option("name", policy_name, "Policy name")->required();
  pdelete->callback([&] { code = connect().DeletePolicy(policy_name); });
  CLI::App* pregen = policies->add_subcommand("regenerate-key", "Give a policy a new random key")
                         ->footer("Example: ferryctl policies regenerate-key backend --slot primary");
  pregen->add_option("name", policy_name, "Policy name")->required();
  pregen->add_option("--slot", slot, "primary or secondary")
      ->check(CLI::IsMember({"primary", "secondary"}))
      ->capture_default_str();
  pregen->callback([&] { code = connect().RegeneratePolicyKey(policy_name, slot); });

  CLI::App* routes = app.add_subcommand("routes", "Message routes (needs ServiceConnect)")
                         ->footer("Example: ferryctl routes list");
  routes->require_subcommand(1);
  std::string route_name, condition, endpoint_name = "events", topic, body, content_type;
  bool route_disabled = false, lifecycle = false;
  std::vector<std::string> sample_props;
  for (const bool create : {true, false}) {
    CLI::App* cmd = routes->add_subcommand(create ? "create" : "update",
                                           create ? "Create a route" : "Replace a route")
                        ->footer("Example: ferryctl routes create hot --endpoint alerts --condition "
                                 "'AS_NUMBER(temperature) > 30'");
    cmd->add_option("name", route_name, "Route name")->required();
    cmd->add_option("--condition", condition, "Routing query (empty: every message)");
    cmd->add_option("--endpoint", endpoint_name, "Endpoint name")->capture_default_str();
    cmd->add_flag("--disabled", route_disabled, "Store the route disabled");
    cmd->add_flag("--lifecycle", lifecycle, "Route device lifecycle events instead of messages");
    cmd->callback([&, create] {
      code = connect().SaveRoute(create, route_name, condition, endpoint_name, route_disabled, lifecycle);
    });
  }
  routes->add_subcommand("list", "List routes")
      ->footer("Example: ferryctl routes list --json")
      ->callback([&] { code = connect().ListRoutes(); });
  CLI::App* rdel = routes->add_subcommand("delete", "Delete a route")
                       ->footer("Example: ferryctl routes delete hot");
  rdel->add_option("name", route_name, "Route name")->required();
  rdel->callback([&] { code = connect().DeleteRoute(route_name); });
  CLI::App* rtest = routes->add_subcommand("test", "Try a condition, or every route, on a sample message")
                        ->footer("Example: ferryctl routes test --condition '$body.temp > 30' --body "
                                 "'{\"temp\":31}' --content-type application/json");
  rtest->add_option("--condition", condition, "Condition to try (default: every enabled route)");
  rtest->add_option("--body", body, "Sample body");
  rtest->add_option("--content-type", content_type, "Sample content type (encoding utf-8)");
  rtest->add_option("--property", sample_props, "Application property name=value (repeatable)");
  rtest->callback([&] { code = connect().TestRoutes(condition, body, content_type, sample_props); });
  bool fallback_on = false;
  CLI::App* fallback = routes->add_subcommand("fallback", "Turn the fallback route on or off")
                           ->footer("Example: ferryctl routes fallback off");
  fallback->add_option("state", topic, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
  fallback->callback([&] {
    fallback_on = topic == "on";
    code = connect().SetFallback(fallback_on);
  });

  CLI::App* endpoints = app.add_subcommand("endpoints", "Routing endpoints (needs ServiceConnect)")
                            ->footer("Example: ferryctl endpoints list");
  endpoints->require_subcommand(1);
  CLI::App* ecreate = endpoints->add_subcommand("create", "Create a Kafka endpoint")
                          ->footer("Example: ferryctl endpoints create alerts --kafka-topic ferry.alerts");
  ecreate->add_option("name", endpoint_name, "Endpoint name")->required();
  ecreate->add_option("--kafka-topic", topic, "Kafka topic")->required();
  ecreate->callback([&] { code = connect().CreateEndpoint(endpoint_name, topic); });
  endpoints->add_subcommand("list", "List endpoints")
      ->footer("Example: ferryctl endpoints list")
      ->callback([&] { code = connect().ListEndpoints(); });
  CLI::App* edel = endpoints->add_subcommand("delete", "Delete an endpoint no route uses")
                       ->footer("Example: ferryctl endpoints delete alerts");
  edel->add_option("name", endpoint_name, "Endpoint name")->required();
  edel->callback([&] { code = connect().DeleteEndpoint(endpoint_name); });

  AddD2cCommands(app, options, out, err, code);
  AddC2dCommands(app, options, out, err, code);

  std::string token_device;
  CLI::App* token = app.add_subcommand("token", "Print a SAS token signed with the connection string")
                        ->footer("Example: ferryctl --token-ttl 600 token --device thermostat-7");
  token->add_option("--device", token_device,
                    "With a policy connection string: scope the token to this device");
  token->callback([&] { code = connect().Token(token_device); });

  app.add_subcommand("health", "Liveness and readiness of a ferryd")
      ->footer("Example: ferryctl --endpoint 127.0.0.1:50051 health")
      ->callback([&] { code = connect().Health(); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e, out, err);
    return rc == 0 ? kExitOk : kExitUsage;
  } catch (const std::exception& e) {
    err << "ferryctl: " << e.what() << "\n";
    return kExitUsage;
  }
  return code;
}

}  // namespace ferry::ctl
