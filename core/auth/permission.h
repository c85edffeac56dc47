#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::auth {

// What a call needs (IoT Hub's four permissions). kNone is reserved for health
// checks; kHubOwner means all four permissions (policy management).
enum class Permission {
  kNone,
  kRegistryRead,
  kRegistryWrite,
  kServiceConnect,
  kDeviceConnect,
  kHubOwner,
};

[[nodiscard]] std::string_view PermissionName(Permission p);
// "RegistryRead" etc.; nullopt for anything else (kNone and kHubOwner are not
// grantable names).
[[nodiscard]] std::optional<Permission> ParsePermission(std::string_view name);

// The permissions a policy grants.
class PermissionSet final {
 public:
  PermissionSet() = default;
  static PermissionSet All();
  void Add(Permission p);
  [[nodiscard]] bool Has(Permission p) const;
  // Whether a call needing `need` may run: RegistryWrite includes
  // RegistryRead (IoT Hub: "read and write access"); kHubOwner needs all
  // four; kNone is always satisfied.
  [[nodiscard]] bool Satisfies(Permission need) const;
  [[nodiscard]] std::vector<Permission> List() const;
  [[nodiscard]] std::vector<std::string> Names() const;
  [[nodiscard]] bool empty() const { return bits_ == 0; }
  bool operator==(const PermissionSet&) const = default;

 private:
  std::uint8_t bits_ = 0;
};

}  // namespace ferry::auth
