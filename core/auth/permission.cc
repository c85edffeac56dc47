#include "core/auth/permission.h"

#include <array>

namespace ferry::auth {
namespace {

constexpr std::array kGrantable = {Permission::kRegistryRead, Permission::kRegistryWrite,
                                   Permission::kServiceConnect, Permission::kDeviceConnect};

std::uint8_t Bit(Permission p) {
  switch (p) {
    case Permission::kRegistryRead:
      return 1;
    case Permission::kRegistryWrite:
      return 2;
    case Permission::kServiceConnect:
      return 4;
    case Permission::kDeviceConnect:
      return 8;
    case Permission::kNone:
    case Permission::kHubOwner:
      return 0;
  }
  return 0;
}

}  // namespace

std::string_view PermissionName(Permission p) {
  switch (p) {
    case Permission::kNone:
      return "None";
    case Permission::kRegistryRead:
      return "RegistryRead";
    case Permission::kRegistryWrite:
      return "RegistryWrite";
    case Permission::kServiceConnect:
      return "ServiceConnect";
    case Permission::kDeviceConnect:
      return "DeviceConnect";
    case Permission::kHubOwner:
      return "HubOwner";
  }
  return "None";
}

std::optional<Permission> ParsePermission(std::string_view name) {
  for (const Permission p : kGrantable) {
    if (PermissionName(p) == name) return p;
  }
  return std::nullopt;
}

PermissionSet PermissionSet::All() {
  PermissionSet s;
  for (const Permission p : kGrantable) s.Add(p);
  return s;
}

void PermissionSet::Add(Permission p) {
  bits_ |= Bit(p);
}

bool PermissionSet::Has(Permission p) const {
  return Bit(p) != 0 && (bits_ & Bit(p)) != 0;
}

bool PermissionSet::Satisfies(Permission need) const {
  switch (need) {
    case Permission::kNone:
      return true;
    case Permission::kRegistryRead:
      return Has(Permission::kRegistryRead) || Has(Permission::kRegistryWrite);
    case Permission::kRegistryWrite:
    case Permission::kServiceConnect:
    case Permission::kDeviceConnect:
      return Has(need);
    case Permission::kHubOwner:
      return *this == All();
  }
  return false;
}

std::vector<Permission> PermissionSet::List() const {
  std::vector<Permission> out;
  for (const Permission p : kGrantable) {
    if (Has(p)) out.push_back(p);
  }
  return out;
}

std::vector<std::string> PermissionSet::Names() const {
  std::vector<std::string> out;
  for (const Permission p : List()) out.emplace_back(PermissionName(p));
  return out;
}

}  // namespace ferry::auth
