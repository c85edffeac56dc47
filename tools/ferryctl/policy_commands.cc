#include "tools/ferryctl/policy_commands.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "core/auth/authorizer.h"
#include "core/auth/connection_string.h"
#include "core/auth/sas.h"
#include "ferry/v1/access.grpc.pb.h"
#include "tools/ferryctl/ferryctl.h"

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

class PolicyClient final : public Session {
 public:
  using Session::Session;

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

 private:
  std::unique_ptr<v1::AccessPolicies::Stub> policies_ = v1::AccessPolicies::NewStub(channel_);
};

}  // namespace

void AddPolicyCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                       int& code) {
  struct State {
    std::string name, primary, secondary, slot = "primary", device;
    std::vector<std::string> permissions;
  };
  auto st = std::make_shared<State>();
  auto client = [&options, &out, &err] { return PolicyClient(options, out, err); };

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

}  // namespace ferry::ctl
