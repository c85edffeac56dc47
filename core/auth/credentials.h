#pragma once

#include <optional>
#include <string>

#include "core/auth/permission.h"

namespace ferry::auth {

struct PolicyCredentials {
  std::string name;
  std::string primary_key;
  std::string secondary_key;
  PermissionSet permissions;
};

struct DeviceCredentials {
  std::string device_id;
  std::string generation_id;
  std::string primary_key;
  std::string secondary_key;
  bool enabled = true;
};

// Where the authorizer finds keys. Implementations cache; lookups must not
// cost a database round trip in the steady state. Thread-safe.
class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  [[nodiscard]] virtual std::optional<PolicyCredentials> Policy(const std::string& name) = 0;
  [[nodiscard]] virtual std::optional<DeviceCredentials> Device(const std::string& device_id) = 0;
};

// Who is calling, as the authorizer decided.
struct Caller {
  enum class Kind { kAnonymous, kPolicy, kDevice };
  Kind kind = Kind::kAnonymous;
  std::string principal;                     // policy name, device id, or "anonymous"
  PermissionSet permissions;                 // a policy's; DeviceConnect for a device
  std::optional<std::string> device_id;      // for device-scoped calls: who is acted for
  std::optional<std::string> generation_id;  // that device's generation
};

// What a call asks for.
struct AccessRequest {
  Permission permission = Permission::kNone;
  // Set for calls made on behalf of one device (device-facing methods).
  std::optional<std::string> device_id;
};

}  // namespace ferry::auth
