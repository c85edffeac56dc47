#include "core/auth/authorizer.h"

#include <fmt/format.h>

#include "core/error.h"

namespace ferry::auth {
namespace {

[[noreturn]] void Unauthenticated(const std::string& why) {
  throw Error(Reason::kIotHubUnauthorizedAccess, why);
}

[[noreturn]] void Denied(const std::string& why) {
  throw Error(Reason::kPermissionDenied, why);
}

bool SignedByEither(const SasToken& token, const std::string& primary,
                    const std::string& secondary) {
  // Both checks run so that timing does not tell which key matched.
  const bool a = SignedWith(token, primary);
  const bool b = SignedWith(token, secondary);
  return a || b;
}

}  // namespace

std::string DeviceResource(std::string_view hub_host, std::string_view device_id) {
  return fmt::format("{}/devices/{}", hub_host, device_id);
}

SasAuthorizer::SasAuthorizer(std::string_view hub_host, CredentialSource& credentials,
                             const Clock& clock, std::chrono::seconds clock_skew)
    : hub_host_(ToLower(hub_host)),
      credentials_(credentials),
      clock_(clock),
      clock_skew_(clock_skew) {}

Caller SasAuthorizer::Authorize(const AccessRequest& request,
                                std::string_view authorization) const {
  if (request.permission == Permission::kNone)
    return {Caller::Kind::kAnonymous, "anonymous", {}, {}};
  if (authorization.empty()) {
    Unauthenticated("no SAS token in the 'authorization' metadata");
  }
  const SasToken token = ParseSasToken(authorization);
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch()).count();
  if (token.expiry < now - clock_skew_.count()) {  // never overflows: se > 0, skew <= 1 h
    Unauthenticated(fmt::format("SAS token expired at {} (now {})", token.expiry, now));
  }
  return token.key_name ? AuthorizePolicy(request, token) : AuthorizeDevice(request, token);
}

Caller SasAuthorizer::AuthorizePolicy(const AccessRequest& request, const SasToken& token) const {
  const auto policy = credentials_.Policy(*token.key_name);
  if (!policy || !SignedByEither(token, policy->primary_key, policy->secondary_key)) {
    Unauthenticated(
        fmt::format("SAS token for policy '{}' is not signed by its key", *token.key_name));
  }
  const std::string target =
      request.device_id ? DeviceResource(hub_host_, *request.device_id) : hub_host_;
  if (!ResourceCovers(token.resource, target)) {
    Unauthenticated(fmt::format("SAS token is scoped to '{}', not '{}'", token.resource, target));
  }
  if (!policy->permissions.Satisfies(request.permission)) {
    Denied(fmt::format("policy '{}' does not grant {}", policy->name,
                       PermissionName(request.permission)));
  }
  Caller caller{Caller::Kind::kPolicy, policy->name, policy->permissions, request.device_id};
  if (request.device_id) {
    const auto device = credentials_.Device(*request.device_id);
    if (!device) throw Error(Reason::kDeviceNotFound, "device does not exist");
    if (!device->enabled) Denied("device is disabled");
    caller.generation_id = device->generation_id;
  }
  return caller;
}

Caller SasAuthorizer::AuthorizeDevice(const AccessRequest& request, const SasToken& token) const {
  // Which device signed it: the one the call acts for, or (for calls that
  // act for none) the one the token names, case as sent if the signer kept
  // it, else lower-cased.
  std::string device_id;
  std::optional<DeviceCredentials> device;
  if (request.device_id) {
    device_id = *request.device_id;
    device = credentials_.Device(device_id);
  } else {
    const std::string prefix = hub_host_ + "/devices/";
    const std::string as_sent = UrlDecode(token.raw_resource);
    if (token.resource.rfind(prefix, 0) != 0) {
      Unauthenticated("SAS token without skn must be scoped to a device");
    }
    for (const std::string& candidate : {as_sent.substr(std::min(prefix.size(), as_sent.size())),
                                         token.resource.substr(prefix.size())}) {
      device = credentials_.Device(candidate);
      device_id = candidate;
      if (device) break;
    }
  }
  if (!device || !SignedByEither(token, device->primary_key, device->secondary_key)) {
    Unauthenticated("SAS token is not signed by the device's key");
  }
  if (!ResourceCovers(token.resource, DeviceResource(hub_host_, device_id))) {
    Unauthenticated(
        fmt::format("SAS token is scoped to '{}', not device '{}'", token.resource, device_id));
  }
  if (!request.device_id || request.permission != Permission::kDeviceConnect) {
    Denied(fmt::format("a device key grants only DeviceConnect for that device, not {}",
                       PermissionName(request.permission)));
  }
  if (!device->enabled) Unauthenticated(fmt::format("device '{}' is disabled", device_id));
  PermissionSet perms;
  perms.Add(Permission::kDeviceConnect);
  return {Caller::Kind::kDevice, device_id, perms, device_id, device->generation_id};
}

}  // namespace ferry::auth
