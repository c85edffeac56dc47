#include "tools/ferryctl/ferryctl.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "core/auth/authorizer.h"
#include "core/auth/connection_string.h"
#include "core/auth/sas.h"
#include "ferry/v1/access.grpc.pb.h"
#include "ferry/v1/audit.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "ferry/v1/routing.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/ferryctl/c2d_commands.h"
#include "tools/ferryctl/d2c_commands.h"
#include "tools/ferryctl/session.h"

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
      case v1::ACCESS_PERMISSION_REGISTRY_READ:
        out += "RegistryRead";
        break;
      case v1::ACCESS_PERMISSION_REGISTRY_WRITE:
        out += "RegistryWrite";
        break;
      case v1::ACCESS_PERMISSION_SERVICE_CONNECT:
        out += "ServiceConnect";
        break;
      case v1::ACCESS_PERMISSION_DEVICE_CONNECT:
        out += "DeviceConnect";
        break;
      default:
        out += "?";
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

// A JSON object of string fields in this order, for results that are no
// proto message.
std::string JsonStrings(const std::vector<std::pair<std::string, std::string>>& fields) {
  nlohmann::ordered_json object = nlohmann::ordered_json::object();
  for (const auto& [name, value] : fields) object[name] = value;
  return object.dump();
}

// A file that holds secrets: written under a temporary name created with
// mode 0600 next to `path`, renamed over `path` by Commit, removed if the
// object goes without Commit (a failed export leaves no partial file).
class SecretFile final {
 public:
  explicit SecretFile(std::string path) : path_(std::move(path)), temp_(path_ + ".XXXXXX") {
    const int fd = ::mkstemp(temp_.data());
    if (fd < 0) throw std::runtime_error("cannot create a file next to '" + path_ + "'");
    ::close(fd);
    stream_.open(temp_, std::ios::trunc);
    if (!stream_) {
      ::unlink(temp_.c_str());
      throw std::runtime_error("cannot write '" + temp_ + "'");
    }
  }
  ~SecretFile() {
    if (!committed_) ::unlink(temp_.c_str());
  }
  SecretFile(const SecretFile&) = delete;
  SecretFile& operator=(const SecretFile&) = delete;

  std::ostream& stream() { return stream_; }
  // Throws when the data could not be written or renamed.
  void Commit() {
    stream_.close();
    if (stream_.fail()) throw std::runtime_error("cannot write '" + temp_ + "'");
    if (std::rename(temp_.c_str(), path_.c_str()) != 0) {
      throw std::runtime_error("cannot rename '" + temp_ + "' to '" + path_ + "'");
    }
    committed_ = true;
  }

 private:
  std::string path_;
  std::string temp_;
  std::ofstream stream_;
  bool committed_ = false;
};

// `text` with each run of line breaks (and the spaces around them) as one
// space: a reason on one line of a report.
std::string OneLine(const std::string& text) {
  std::string out;
  bool pending_space = false;
  for (const char c : text) {
    if (c == '\n' || c == '\r') {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) {
      if (c == ' ') continue;
      out += ' ';
      pending_space = false;
    }
    out += c;
  }
  return out;
}

// Refused by ferryd's rate limits (the reason prefixes the message).
bool Throttled(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
         s.error_message().starts_with("ThrottlingException");
}

bool Unreachable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

class Client final : public Session {
 public:
  Client(const Options& options, std::ostream& out, std::ostream& err)
      : Session(options, out, err) {}

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
    v1::GetDeviceRequest deleted;
    deleted.set_device_id(id);
    return Done(deleted, "deleted " + id);
  }

  // Every device, all pages, one JSON object a line (keys included) to
  // `output` (mode 0600, replaced only once complete) or, for "-", to stdout.
  int Export(const std::string& output) {
    std::optional<SecretFile> file;
    if (output != "-") file.emplace(output);
    std::ostream& to = file ? file->stream() : out_;
    long count = 0;
    std::string page_token;
    do {
      v1::ListDevicesRequest req;
      req.set_page_size(1000);
      req.set_page_token(page_token);
      v1::ListDevicesResponse resp;
      const grpc::Status s = registry_->ListDevices(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      for (const v1::Device& d : resp.devices()) to << Json(d) << "\n";
      count += resp.devices_size();
      page_token = resp.next_page_token();
    } while (!page_token.empty());
    if (file) {
      file->Commit();
    } else {
      out_.flush();  // the devices before the count on stderr
    }
    err_ << "exported " << count << " devices" << (file ? " to " + output : std::string()) << "\n";
    return kExitOk;
  }

  // Creates a device from each JSON line of `input` ("-": stdin), keeping
  // its keys, status and status reason when present, one call at a time
  // (throttled calls are retried). Stops at the first call that does not
  // reach Ferry (exit 3: a device whose call timed out may exist; run again
  // with --skip-existing); otherwise goes on past failed lines and exits 1
  // if there were any.
  int Import(const std::string& input, bool skip_existing) {
    std::ifstream file;
    if (input != "-") {
      file.open(input);
      if (!file) {
        err_ << "ferryctl: cannot read '" << input << "'\n";
        return kExitUsage;
      }
    }
    std::istream& in = input == "-" ? std::cin : file;
    long created = 0, skipped = 0, number = 0;
    std::vector<std::pair<long, std::string>> failed;
    std::optional<grpc::Status> unreachable;
    std::string line;
    while (!unreachable && std::getline(in, line)) {
      ++number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      v1::Device d;
      const auto parsed = google::protobuf::util::JsonStringToMessage(line, &d);
      if (!parsed.ok()) {
        failed.emplace_back(
            number, "not a device as JSON: " +
                        OneLine(std::string(parsed.message().data(), parsed.message().size())));
        continue;
      }
      if (d.device_id().empty()) {
        failed.emplace_back(number, "no device_id");
        continue;
      }
      v1::CreateDeviceRequest req;
      v1::Device* c = req.mutable_device();
      c->set_device_id(d.device_id());
      c->set_status(d.status());
      c->set_status_reason(d.status_reason());
      *c->mutable_authentication() = d.authentication();
      v1::Device resp;
      grpc::Status s = registry_->CreateDevice(Context().get(), req, &resp);
      // Over ferryd's --throttle-registry rate: the call did nothing; back
      // off and try again (about 9 s in all before the line counts as failed).
      auto pause = std::chrono::milliseconds(100);
      for (int attempt = 0; attempt < 8 && Throttled(s); ++attempt) {
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(2000));
        s = registry_->CreateDevice(Context().get(), req, &resp);
      }
      if (s.ok()) {
        ++created;
      } else if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS && skip_existing) {
        ++skipped;
      } else if (Unreachable(s)) {
        unreachable = s;
      } else {
        failed.emplace_back(number, OneLine(s.error_message()));
      }
    }
    for (const auto& [n, reason] : failed) err_ << "line " << n << ": " << reason << "\n";
    err_ << "created " << created << ", skipped " << skipped << ", failed " << failed.size();
    if (unreachable) err_ << "; stopped at line " << number;
    err_ << "\n";
    if (options_.json) {
      nlohmann::ordered_json summary = {
          {"created", created}, {"skipped", skipped}, {"failed", failed.size()}};
      summary["failed_lines"] = nlohmann::ordered_json::array();
      for (const auto& [n, reason] : failed)
        summary["failed_lines"].push_back({{"line", n}, {"reason", reason}});
      if (unreachable) summary["stopped_at_line"] = number;
      out_ << summary.dump() << "\n";
    }
    if (unreachable) return Fail(*unreachable);
    return failed.empty() ? kExitOk : kExitRefused;
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
    out_ << (options_.json ? JsonStrings({{"device_id", id}, {"connection_string", cs.ToString()}})
                           : cs.ToString())
         << "\n";
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

  int UpdatePolicy(const std::string& name, const std::vector<std::string>& permissions,
                   const std::string& primary, const std::string& secondary) {
    v1::UpdatePolicyRequest req;
    req.mutable_policy()->set_name(name);
    for (const auto& p : permissions) req.mutable_policy()->add_permissions(PermissionFromName(p));
    req.mutable_policy()->set_primary_key(primary);
    req.mutable_policy()->set_secondary_key(secondary);
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
    return Done(req, "deleted policy " + name);
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
    const std::string token =
        !device.empty() && credentials_->key_name
            ? auth::MakeSasToken(auth::DeviceResource(credentials_->host_name, device),
                                 credentials_->key, expiry, *credentials_->key_name)
            : credentials_->Token(expiry);
    out_ << (options_.json ? JsonStrings({{"token", token}}) : token) << "\n";
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
      out_ << "created endpoint " << resp.name() << " -> kafka topic " << resp.kafka_topic()
           << "\n";
    }
    return kExitOk;
  }

  int ListEndpoints() {
    v1::ListEndpointsResponse resp;
    const grpc::Status s =
        routing_->ListEndpoints(Context().get(), v1::ListEndpointsRequest(), &resp);
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
    return Done(req, "deleted endpoint " + name);
  }

  int SaveRoute(bool create, const std::string& name, const std::string& condition,
                const std::string& endpoint, bool disabled, bool lifecycle) {
    v1::Route r;
    r.set_name(name);
    r.set_condition(condition);
    r.set_endpoint(endpoint);
    r.set_enabled(!disabled);
    r.set_source(lifecycle ? v1::ROUTE_SOURCE_DEVICE_LIFECYCLE_EVENTS
                           : v1::ROUTE_SOURCE_DEVICE_MESSAGES);
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
        rows.push_back(
            {r.name(), r.enabled() ? "yes" : "no",
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
    return Done(req, "deleted route " + name);
  }

  int GetRoute(const std::string& name) {
    v1::GetRouteRequest req;
    req.set_name(name);
    v1::Route r;
    const grpc::Status s = routing_->GetRoute(Context().get(), req, &r);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      out_ << Json(r) << "\n";
      return kExitOk;
    }
    Table(out_, {"FIELD", "VALUE"},
          {{"name", r.name()},
           {"enabled", r.enabled() ? "yes" : "no"},
           {"source",
            r.source() == v1::ROUTE_SOURCE_DEVICE_LIFECYCLE_EVENTS ? "lifecycle" : "messages"},
           {"endpoint", r.endpoint()},
           {"condition", r.condition().empty() ? "true" : r.condition()},
           {"created_time", Time(r.created_time())},
           {"updated_time", Time(r.updated_time())}});
    return kExitOk;
  }

  int Settings() {
    v1::RoutingSettings resp;
    const grpc::Status s =
        routing_->GetSettings(Context().get(), v1::GetRoutingSettingsRequest(), &resp);
    if (!s.ok()) return Fail(s);
    if (options_.json) {
      out_ << Json(resp) << "\n";
      return kExitOk;
    }
    Table(out_, {"FIELD", "VALUE"},
          {{"fallback", resp.fallback_enabled() ? "on" : "off"},
           {"version", std::to_string(resp.version())}});
    return kExitOk;
  }

  int SetFallback(bool enabled) {
    v1::SetFallbackRequest req;
    req.set_enabled(enabled);
    v1::RoutingSettings resp;
    const grpc::Status s = routing_->SetFallback(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    out_ << (options_.json ? Json(resp)
                           : std::string("fallback ") + (resp.fallback_enabled() ? "on" : "off"))
         << "\n";
    return kExitOk;
  }

  // Tries a condition or a stored route (or, with neither, every enabled
  // route) on a sample.
  int TestRoutes(const std::string& condition, const std::string& route, const std::string& body,
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
    if (!condition.empty() || !route.empty()) {
      v1::TestRouteRequest req;
      req.set_condition(condition);
      req.set_route(route);
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

  int ListAudit(v1::ListAuditRecordsRequest req, long limit) {
    std::vector<v1::AuditRecord> all;
    while (limit <= 0 || static_cast<long>(all.size()) < limit) {
      v1::ListAuditRecordsResponse resp;
      const grpc::Status s = audit_->ListAuditRecords(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      for (const auto& r : resp.records()) all.push_back(r);
      if (resp.next_after_id() == 0) break;
      req.set_after_id(resp.next_after_id());
    }
    if (limit > 0 && static_cast<long>(all.size()) > limit)
      all.resize(static_cast<std::size_t>(limit));
    if (options_.json) {
      for (const auto& r : all) out_ << Json(r) << "\n";
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : all) {
      rows.push_back({std::to_string(r.id()), Time(r.time()), r.actor_kind() + ":" + r.actor(),
                      r.action(), r.target(), r.details_json().empty() ? "-" : r.details_json()});
    }
    Table(out_, {"ID", "TIME", "ACTOR", "ACTION", "TARGET", "DETAILS"}, rows);
    return kExitOk;
  }

 private:
  std::unique_ptr<v1::Registry::Stub> registry_ = v1::Registry::NewStub(channel_);
  std::unique_ptr<v1::AccessPolicies::Stub> policies_ = v1::AccessPolicies::NewStub(channel_);
  std::unique_ptr<v1::Routing::Stub> routing_ = v1::Routing::NewStub(channel_);
  std::unique_ptr<grpc::health::v1::Health::Stub> health_ =
      grpc::health::v1::Health::NewStub(channel_);
  std::unique_ptr<v1::AuditLog::Stub> audit_ = v1::AuditLog::NewStub(channel_);
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

void AddRegistryCommands(CLI::App& app, const std::function<Client()>& client, int& code) {
  struct State {
    std::string id, primary, secondary, reason, if_match, page_token, slot = "primary", file = "-";
    std::optional<std::string> update_reason;
    bool disabled = false, one_page = false, enable = false, disable = false, skip_existing = false;
    int page_size = 0;
  };
  auto st = std::make_shared<State>();

  CLI::App* devices =
      app.add_subcommand("devices", "Device identity registry (needs RegistryRead/RegistryWrite)")
          ->footer("Example: ferryctl devices list");
  devices->require_subcommand(1);

  CLI::App* create = devices->add_subcommand("create", "Register a device")
                         ->footer(
                             "Example: ferryctl devices create thermostat-7 --disabled "
                             "--status-reason 'not installed yet'");
  create->add_option("device-id", st->id, "Device id (case-sensitive)")->required();
  create->add_option("--primary-key", st->primary, "Base64 key (generated when omitted)");
  create->add_option("--secondary-key", st->secondary, "Base64 key (generated when omitted)");
  create->add_flag("--disabled", st->disabled, "Create the device disabled");
  create->add_option("--status-reason", st->reason, "Why (at most 128 characters)");
  create->callback([st, client, &code] {
    code = client().Create(st->id, st->primary, st->secondary, st->disabled, st->reason);
  });

  CLI::App* get = devices->add_subcommand("get", "Show one device, keys included")
                      ->footer("Example: ferryctl devices get thermostat-7 --json");
  get->add_option("device-id", st->id, "Device id")->required();
  get->callback([st, client, &code] { code = client().Get(st->id); });

  CLI::App* list = devices->add_subcommand("list", "List devices in id order (all pages)")
                       ->footer("Example: ferryctl devices list --page-size 500");
  list->add_option("--page-size", st->page_size, "Devices per call, 1 to 1000 (default 100)");
  list->add_option("--page-token", st->page_token,
                   "Start after a previous page (implies --one-page)");
  list->add_flag("--one-page", st->one_page, "Print one page only, with the next page token");
  list->callback([st, client, &code] {
    code = client().List(st->page_size, st->page_token, st->one_page || !st->page_token.empty());
  });

  CLI::App* update = devices->add_subcommand("update", "Change status, reason or keys")
                         ->footer(
                             "Example: ferryctl devices update thermostat-7 --disable "
                             "--status-reason 'stolen'");
  update->add_option("device-id", st->id, "Device id")->required();
  auto* en = update->add_flag("--enable", st->enable, "Enable the device");
  update->add_flag("--disable", st->disable, "Disable the device")->excludes(en);
  update->add_option("--status-reason", st->update_reason, "Why");
  update->add_option("--primary-key", st->primary, "New base64 primary key");
  update->add_option("--secondary-key", st->secondary, "New base64 secondary key");
  update->add_option("--if-match", st->if_match, "Refuse unless the device's etag is this");
  update->callback([st, client, &code] {
    std::optional<bool> enabled;
    if (st->enable) enabled = true;
    if (st->disable) enabled = false;
    code = client().Update(st->id, enabled, st->update_reason, st->primary, st->secondary,
                           st->if_match);
  });

  CLI::App* del = devices->add_subcommand("delete", "Delete a device")
                      ->footer("Example: ferryctl devices delete thermostat-7");
  del->add_option("device-id", st->id, "Device id")->required();
  del->add_option("--if-match", st->if_match, "Refuse unless the device's etag is this");
  del->callback([st, client, &code] { code = client().Delete(st->id, st->if_match); });

  CLI::App* regen =
      devices->add_subcommand("regenerate-key", "Give a device a new random key")
          ->footer("Example: ferryctl devices regenerate-key thermostat-7 --slot secondary");
  regen->add_option("device-id", st->id, "Device id")->required();
  regen->add_option("--slot", st->slot, "primary or secondary")
      ->check(CLI::IsMember({"primary", "secondary"}))
      ->capture_default_str();
  regen->callback([st, client, &code] { code = client().RegenerateDeviceKey(st->id, st->slot); });

  CLI::App* devcs =
      devices->add_subcommand("connection-string", "Print a device's connection string")
          ->footer("Example: ferryctl devices connection-string thermostat-7");
  devcs->add_option("device-id", st->id, "Device id")->required();
  devcs->add_option("--slot", st->slot, "primary or secondary")
      ->check(CLI::IsMember({"primary", "secondary"}))
      ->capture_default_str();
  devcs->callback(
      [st, client, &code] { code = client().DeviceConnectionString(st->id, st->slot); });

  CLI::App* exp =
      devices
          ->add_subcommand(
              "export",
              "Write every device as one JSON object a line, KEYS INCLUDED (the output holds "
              "secrets: a file is created with mode 0600 and appears only once complete)")
          ->footer(
              "Devices are listed page by page: a device created or deleted during the export may "
              "or "
              "may not be in it.\n"
              "Example: ferryctl devices export --output devices.jsonl\n"
              "Example: ferryctl devices export | jq -r .device_id");
  exp->add_option("-o,--output", st->file, "File to write (\"-\": stdout)")->capture_default_str();
  exp->callback([st, client, &code] { code = client().Export(st->file); });

  CLI::App* imp =
      devices
          ->add_subcommand(
              "import",
              "Create devices from JSON lines (as `devices export` writes them), keeping their "
              "keys, status and status reason; generation id and etag are new")
          ->footer(
              "Prints \"created N, skipped M, failed K\" and each failed line's number and reason "
              "on "
              "stderr (and, with --json, the summary as JSON on stdout); exits 1 if any line "
              "failed, 3 "
              "if Ferry became unreachable (the import stops there; run it again with "
              "--skip-existing). "
              "Calls refused with ThrottlingException are retried with backoff.\n"
              "Example: ferryctl devices import devices.jsonl --skip-existing\n"
              "Example: ferryctl devices export -e old:50051 | ferryctl devices import -");
  imp->add_option("file", st->file, "JSON lines file (\"-\": stdin)")->required();
  imp->add_flag("--skip-existing", st->skip_existing,
                "Count a device that already exists as skipped, not failed");
  imp->callback([st, client, &code] { code = client().Import(st->file, st->skip_existing); });
}

void AddPolicyCommands(CLI::App& app, const std::function<Client()>& client, int& code) {
  struct State {
    std::string name, primary, secondary, slot = "primary", device;
    std::vector<std::string> permissions;
  };
  auto st = std::make_shared<State>();

  CLI::App* policies =
      app.add_subcommand("policies", "Shared access policies (needs an owner policy)")
          ->footer("Example: ferryctl policies list");
  policies->require_subcommand(1);
  auto add_permissions = [st](CLI::App* cmd) {
    cmd->add_option("--permissions", st->permissions,
                    "Comma-separated: RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect")
        ->delimiter(',')
        ->required();
  };
  CLI::App* pcreate = policies->add_subcommand("create", "Create a policy")
                          ->footer(
                              "Example: ferryctl policies create backend --permissions "
                              "ServiceConnect,RegistryRead");
  pcreate->add_option("name", st->name, "Policy name")->required();
  add_permissions(pcreate);
  pcreate->add_option("--primary-key", st->primary, "Base64 key (generated when omitted)");
  pcreate->add_option("--secondary-key", st->secondary, "Base64 key (generated when omitted)");
  pcreate->callback([st, client, &code] {
    code = client().CreatePolicy(st->name, st->permissions, st->primary, st->secondary);
  });
  CLI::App* pget = policies->add_subcommand("get", "Show a policy with its keys")
                       ->footer("Example: ferryctl policies get iothubowner --json");
  pget->add_option("name", st->name, "Policy name")->required();
  pget->callback([st, client, &code] { code = client().GetPolicy(st->name); });
  policies->add_subcommand("list", "List policies")
      ->footer("Example: ferryctl policies list --json")
      ->callback([client, &code] { code = client().ListPolicies(); });
  CLI::App* pupdate =
      policies->add_subcommand("update", "Replace a policy's permissions (and keys, if given)")
          ->footer("Example: ferryctl policies update backend --permissions ServiceConnect");
  pupdate->add_option("name", st->name, "Policy name")->required();
  add_permissions(pupdate);
  pupdate->add_option("--primary-key", st->primary, "New base64 primary key (default: keep)");
  pupdate->add_option("--secondary-key", st->secondary, "New base64 secondary key (default: keep)");
  pupdate->callback([st, client, &code] {
    code = client().UpdatePolicy(st->name, st->permissions, st->primary, st->secondary);
  });
  CLI::App* pdelete = policies->add_subcommand("delete", "Delete a policy")
                          ->footer("Example: ferryctl policies delete backend");
  pdelete->add_option("name", st->name, "Policy name")->required();
  pdelete->callback([st, client, &code] { code = client().DeletePolicy(st->name); });
  CLI::App* pregen =
      policies->add_subcommand("regenerate-key", "Give a policy a new random key")
          ->footer("Example: ferryctl policies regenerate-key backend --slot primary");
  pregen->add_option("name", st->name, "Policy name")->required();
  pregen->add_option("--slot", st->slot, "primary or secondary")
      ->check(CLI::IsMember({"primary", "secondary"}))
      ->capture_default_str();
  pregen->callback(
      [st, client, &code] { code = client().RegeneratePolicyKey(st->name, st->slot); });

  CLI::App* token =
      app.add_subcommand("token", "Print a SAS token signed with the connection string (no call)")
          ->footer("Example: ferryctl token --device thermostat-7 --token-ttl 600");
  token->add_option("--device", st->device,
                    "With a policy connection string: scope the token to this device");
  token->callback([st, client, &code] { code = client().Token(st->device); });
}

void AddRoutingCommands(CLI::App& app, const std::function<Client()>& client, int& code) {
  struct State {
    std::string route, condition, endpoint = "events", topic, body, content_type, state;
    std::vector<std::string> properties;
    bool disabled = false, lifecycle = false;
  };
  auto st = std::make_shared<State>();

  CLI::App* routes = app.add_subcommand("routes", "Message routes (needs ServiceConnect)")
                         ->footer("Example: ferryctl routes list");
  routes->require_subcommand(1);
  for (const bool create : {true, false}) {
    CLI::App* cmd =
        routes
            ->add_subcommand(create ? "create" : "update",
                             create ? "Create a route" : "Replace a route")
            ->footer(std::string("Example: ferryctl routes ") + (create ? "create" : "update") +
                     " hot --endpoint alerts --condition 'AS_NUMBER(temperature) > 30'");
    cmd->add_option("name", st->route, "Route name")->required();
    cmd->add_option("--condition", st->condition, "Routing query (empty: every message)");
    cmd->add_option("--endpoint", st->endpoint, "Endpoint name")->capture_default_str();
    cmd->add_flag("--disabled", st->disabled, "Store the route disabled");
    cmd->add_flag("--lifecycle", st->lifecycle,
                  "Route device lifecycle events instead of messages");
    cmd->callback([st, client, create, &code] {
      code = client().SaveRoute(create, st->route, st->condition, st->endpoint, st->disabled,
                                st->lifecycle);
    });
  }
  CLI::App* rget =
      routes->add_subcommand("get", "Show one route")->footer("Example: ferryctl routes get hot");
  rget->add_option("name", st->route, "Route name")->required();
  rget->callback([st, client, &code] { code = client().GetRoute(st->route); });
  routes->add_subcommand("list", "List routes")
      ->footer("Example: ferryctl routes list --json")
      ->callback([client, &code] { code = client().ListRoutes(); });
  CLI::App* rdel = routes->add_subcommand("delete", "Delete a route")
                       ->footer("Example: ferryctl routes delete hot");
  rdel->add_option("name", st->route, "Route name")->required();
  rdel->callback([st, client, &code] { code = client().DeleteRoute(st->route); });
  CLI::App* rtest =
      routes
          ->add_subcommand(
              "test", "Try a condition, a stored route, or every enabled route on a sample message")
          ->footer(
              "Example: ferryctl routes test --condition '$body.temp > 30' --body '{\"temp\":31}' "
              "--content-type application/json\n"
              "Example: ferryctl routes test --route hot --property temperature=31");
  auto* cond = rtest->add_option("--condition", st->condition, "Condition to try");
  rtest->add_option("--route", st->route, "Stored route to try (default: every enabled route)")
      ->excludes(cond);
  rtest->add_option("--body", st->body, "Sample body");
  rtest->add_option("--content-type", st->content_type, "Sample content type (encoding utf-8)");
  rtest->add_option("--property", st->properties, "Application property name=value (repeatable)");
  rtest->callback([st, client, &code] {
    code =
        client().TestRoutes(st->condition, st->route, st->body, st->content_type, st->properties);
  });
  CLI::App* fallback = routes->add_subcommand("fallback", "Turn the fallback route on or off")
                           ->footer("Example: ferryctl routes fallback off");
  fallback->add_option("state", st->state, "on or off")
      ->required()
      ->check(CLI::IsMember({"on", "off"}));
  fallback->callback([st, client, &code] { code = client().SetFallback(st->state == "on"); });
  routes->add_subcommand("settings", "The fallback's state and the routing version")
      ->footer("Example: ferryctl routes settings")
      ->callback([client, &code] { code = client().Settings(); });

  CLI::App* endpoints = app.add_subcommand("endpoints", "Routing endpoints (needs ServiceConnect)")
                            ->footer("Example: ferryctl endpoints list");
  endpoints->require_subcommand(1);
  CLI::App* ecreate =
      endpoints->add_subcommand("create", "Create a Kafka endpoint")
          ->footer("Example: ferryctl endpoints create alerts --kafka-topic ferry.alerts");
  ecreate->add_option("name", st->endpoint, "Endpoint name")->required();
  ecreate->add_option("--kafka-topic", st->topic, "Kafka topic")->required();
  ecreate->callback(
      [st, client, &code] { code = client().CreateEndpoint(st->endpoint, st->topic); });
  endpoints->add_subcommand("list", "List endpoints")
      ->footer("Example: ferryctl endpoints list")
      ->callback([client, &code] { code = client().ListEndpoints(); });
  CLI::App* edel = endpoints->add_subcommand("delete", "Delete an endpoint no route uses")
                       ->footer("Example: ferryctl endpoints delete alerts");
  edel->add_option("name", st->endpoint, "Endpoint name")->required();
  edel->callback([st, client, &code] { code = client().DeleteEndpoint(st->endpoint); });
}

void AddAuditCommands(CLI::App& app, const std::function<Client()>& client, int& code) {
  struct State {
    std::string action, target, actor, since;
    std::int64_t after_id = 0;
    long limit = 0;
  };
  auto st = std::make_shared<State>();
  CLI::App* audit = app.add_subcommand("audit", "The operator audit log (needs ServiceConnect)")
                        ->footer("Example: ferryctl audit list --action device.delete");
  audit->require_subcommand(1);
  CLI::App* list =
      audit->add_subcommand("list", "Audit records, oldest first")
          ->footer("Example: ferryctl audit list --since 2026-11-26T00:00:00Z --actor backend");
  list->add_option("--action", st->action,
                   "Only this action (e.g. policy.create, device.delete, c2d.purge)");
  list->add_option("--target", st->target, "Only this target (a policy name, device id, ...)");
  list->add_option("--actor", st->actor, "Only this actor (a policy name or device id)");
  list->add_option("--since", st->since, "Only records at or after this time (RFC 3339)");
  list->add_option("--after-id", st->after_id, "Start after this record id");
  list->add_option("--limit", st->limit, "At most this many (0: all)");
  list->callback([st, client, &code] {
    v1::ListAuditRecordsRequest req;
    req.set_after_id(st->after_id);
    req.set_page_size(st->limit > 0 && st->limit < 1000 ? static_cast<int>(st->limit) : 1000);
    req.set_action(st->action);
    req.set_target(st->target);
    req.set_actor(st->actor);
    if (!st->since.empty()) *req.mutable_since() = TimeOption("--since", st->since);
    code = client().ListAudit(req, st->limit);
  });
}

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

  const std::function<Client()> client = [&options, &out, &err] {
    return Client(options, out, err);
  };
  AddRegistryCommands(*app, client, code);
  AddPolicyCommands(*app, client, code);
  AddRoutingCommands(*app, client, code);
  AddD2cCommands(*app, options, out, err, code);
  AddC2dCommands(*app, options, out, err, code);
  AddAuditCommands(*app, client, code);

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
