#include "services/auth/policy_service.h"

#include <google/protobuf/util/time_util.h>

#include "core/error.h"
#include "core/log.h"
#include "services/registry/device_rules.h"
#include "services/rpc/proto_time.h"

namespace ferry::access {
namespace {

constexpr std::string_view kService = "ferry.v1.AccessPolicies";

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("access");
  return logger;
}

auth::Permission FromProto(int p) {
  switch (p) {
    case v1::ACCESS_PERMISSION_REGISTRY_READ:
      return auth::Permission::kRegistryRead;
    case v1::ACCESS_PERMISSION_REGISTRY_WRITE:
      return auth::Permission::kRegistryWrite;
    case v1::ACCESS_PERMISSION_SERVICE_CONNECT:
      return auth::Permission::kServiceConnect;
    case v1::ACCESS_PERMISSION_DEVICE_CONNECT:
      return auth::Permission::kDeviceConnect;
    default:
      throw Error(Reason::kArgumentInvalid, "unknown permission " + std::to_string(p));
  }
}

v1::AccessPermission ToProto(auth::Permission p) {
  switch (p) {
    case auth::Permission::kRegistryRead:
      return v1::ACCESS_PERMISSION_REGISTRY_READ;
    case auth::Permission::kRegistryWrite:
      return v1::ACCESS_PERMISSION_REGISTRY_WRITE;
    case auth::Permission::kServiceConnect:
      return v1::ACCESS_PERMISSION_SERVICE_CONNECT;
    case auth::Permission::kDeviceConnect:
      return v1::ACCESS_PERMISSION_DEVICE_CONNECT;
    case auth::Permission::kNone:
    case auth::Permission::kHubOwner:
      return v1::ACCESS_PERMISSION_UNSPECIFIED;
  }
  return v1::ACCESS_PERMISSION_UNSPECIFIED;
}

auth::PermissionSet PermissionsFromProto(const v1::Policy& p) {
  auth::PermissionSet set;
  for (const int perm : p.permissions()) set.Add(FromProto(perm));
  if (set.empty()) throw Error(Reason::kArgumentInvalid, "a policy needs at least one permission");
  return set;
}

void Encode(const StoredPolicy& p, v1::Policy* out) {
  out->set_name(p.credentials.name);
  out->set_primary_key(p.credentials.primary_key);
  out->set_secondary_key(p.credentials.secondary_key);
  for (const auto perm : p.credentials.permissions.List()) out->add_permissions(ToProto(perm));
  *out->mutable_created_time() = rpc::ToProtoTime(p.created_at);
  *out->mutable_updated_time() = rpc::ToProtoTime(p.updated_at);
}

std::optional<std::string> KeyOrKeep(const std::string& key, std::string_view field) {
  if (key.empty()) return std::nullopt;
  registry::ValidateSymmetricKey(key, field);
  return key;
}

}  // namespace

void ValidatePolicyName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (const char c : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_') &&
         static_cast<unsigned char>(c) < 0x80;
  }
  if (!ok) {
    throw Error(Reason::kArgumentInvalid,
                "policy name must be 1 to 64 ASCII letters, digits, '-', '.' or '_'");
  }
}

KeySlot SlotFromProto(v1::KeySlot slot) {
  switch (slot) {
    case v1::KEY_SLOT_PRIMARY:
      return KeySlot::kPrimary;
    case v1::KEY_SLOT_SECONDARY:
      return KeySlot::kSecondary;
    default:
      throw Error(Reason::kArgumentInvalid, "slot must be PRIMARY or SECONDARY");
  }
}

grpc::ServerUnaryReactor* PolicyService::CreatePolicy(grpc::CallbackServerContext* ctx,
                                                      const v1::CreatePolicyRequest* request,
                                                      v1::Policy* response) {
  return runtime_.Unary(
      ctx, kService, "CreatePolicy", request, response,
      [this](const rpc::Caller& caller, const v1::CreatePolicyRequest& req, v1::Policy& resp) {
        const v1::Policy& in = req.policy();
        ValidatePolicyName(in.name());
        auth::PolicyCredentials p{
            .name = in.name(),
            .primary_key =
                KeyOrKeep(in.primary_key(), "primary key").value_or(registry::NewSymmetricKey()),
            .secondary_key = KeyOrKeep(in.secondary_key(), "secondary key")
                                 .value_or(registry::NewSymmetricKey()),
            .permissions = PermissionsFromProto(in),
        };
        const auto audit = audit::For(caller, "policy.create", p.name);
        Encode(store_.Create(p, clock_.Now(), &audit), &resp);
        Logger()->info("policy created policy=\"{}\" permissions=\"{}\" by=\"{}\"", p.name,
                       fmt::join(p.permissions.Names(), ","), caller.principal);
      });
}

grpc::ServerUnaryReactor* PolicyService::GetPolicy(grpc::CallbackServerContext* ctx,
                                                   const v1::GetPolicyRequest* request,
                                                   v1::Policy* response) {
  return runtime_.Unary(
      ctx, kService, "GetPolicy", request, response,
      [this](const rpc::Caller&, const v1::GetPolicyRequest& req, v1::Policy& resp) {
        ValidatePolicyName(req.name());
        Encode(store_.Get(req.name()), &resp);
      });
}

grpc::ServerUnaryReactor* PolicyService::ListPolicies(grpc::CallbackServerContext* ctx,
                                                      const v1::ListPoliciesRequest* request,
                                                      v1::ListPoliciesResponse* response) {
  return runtime_.Unary(
      ctx, kService, "ListPolicies", request, response,
      [this](const rpc::Caller&, const v1::ListPoliciesRequest&, v1::ListPoliciesResponse& resp) {
        for (const auto& p : store_.List()) Encode(p, resp.add_policies());
      });
}

grpc::ServerUnaryReactor* PolicyService::UpdatePolicy(grpc::CallbackServerContext* ctx,
                                                      const v1::UpdatePolicyRequest* request,
                                                      v1::Policy* response) {
  return runtime_.Unary(
      ctx, kService, "UpdatePolicy", request, response,
      [this](const rpc::Caller& caller, const v1::UpdatePolicyRequest& req, v1::Policy& resp) {
        const v1::Policy& in = req.policy();
        ValidatePolicyName(in.name());
        const auth::PermissionSet perms = PermissionsFromProto(in);
        const auto audit = audit::For(caller, "policy.update", in.name());
        Encode(store_.Update(in.name(), perms, KeyOrKeep(in.primary_key(), "primary key"),
                             KeyOrKeep(in.secondary_key(), "secondary key"), clock_.Now(), &audit),
               &resp);
        Logger()->info("policy updated policy=\"{}\" permissions=\"{}\" by=\"{}\"", in.name(),
                       fmt::join(perms.Names(), ","), caller.principal);
      });
}

grpc::ServerUnaryReactor* PolicyService::DeletePolicy(grpc::CallbackServerContext* ctx,
                                                      const v1::DeletePolicyRequest* request,
                                                      v1::DeletePolicyResponse* response) {
  return runtime_.Unary(ctx, kService, "DeletePolicy", request, response,
                        [this](const rpc::Caller& caller, const v1::DeletePolicyRequest& req,
                               v1::DeletePolicyResponse&) {
                          ValidatePolicyName(req.name());
                          const auto audit = audit::For(caller, "policy.delete", req.name());
                          store_.Delete(req.name(), &audit);
                          Logger()->info("policy deleted policy=\"{}\" by=\"{}\"", req.name(),
                                         caller.principal);
                        });
}

grpc::ServerUnaryReactor* PolicyService::RegeneratePolicyKey(
    grpc::CallbackServerContext* ctx, const v1::RegeneratePolicyKeyRequest* request,
    v1::Policy* response) {
  return runtime_.Unary(
      ctx, kService, "RegeneratePolicyKey", request, response,
      [this](const rpc::Caller& caller, const v1::RegeneratePolicyKeyRequest& req,
             v1::Policy& resp) {
        ValidatePolicyName(req.name());
        const KeySlot slot = SlotFromProto(req.slot());
        const auto audit = audit::For(caller, "policy.regenerate_key", req.name());
        Encode(store_.SetKey(req.name(), slot, registry::NewSymmetricKey(), clock_.Now(), &audit),
               &resp);
        Logger()->info("policy key regenerated policy=\"{}\" slot={} by=\"{}\"", req.name(),
                       slot == KeySlot::kPrimary ? "primary" : "secondary", caller.principal);
      });
}

}  // namespace ferry::access
