#pragma once

#include <string_view>

namespace ferry::auth {

// What a call needs (iothub-semantics.md §5.2). kNone is reserved for health
// checks; every other method names one of IoT Hub's four permissions.
enum class Permission {
  kNone,
  kRegistryRead,
  kRegistryWrite,
  kServiceConnect,
  kDeviceConnect,
};

[[nodiscard]] constexpr std::string_view PermissionName(Permission p) {
  switch (p) {
    case Permission::kNone: return "None";
    case Permission::kRegistryRead: return "RegistryRead";
    case Permission::kRegistryWrite: return "RegistryWrite";
    case Permission::kServiceConnect: return "ServiceConnect";
    case Permission::kDeviceConnect: return "DeviceConnect";
  }
  return "None";
}

}  // namespace ferry::auth
