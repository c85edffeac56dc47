#pragma once

#include <span>
#include <string_view>

#include "core/auth/permission.h"

namespace ferry::rpc {

// The operation classes throttled per replica (docs/deviations.md, "Load
// protection").
enum class Throttle { kNone, kD2cSend, kC2dSend, kC2dReceive, kRegistry };
inline constexpr int kThrottleClasses = 5;

// What one RPC method needs before its handler may run.
struct MethodRule {
  std::string_view service;  // full proto name, e.g. "ferry.v1.Registry"
  std::string_view method;   // e.g. "CreateDevice"
  auth::Permission permission;
  // The call acts for one device, named by the request's device_id field:
  // a device token must be that device's, and the device must be enabled.
  bool device_scoped = false;
  Throttle throttle = Throttle::kNone;
};

// Every method of every Ferry service. A unit test walks the proto
// descriptors and fails when a method is missing here or a rule names no
// method; the RPC wrapper refuses a method it finds no rule for.
[[nodiscard]] std::span<const MethodRule> MethodRules();

// nullptr when the method has no rule.
[[nodiscard]] const MethodRule* FindMethodRule(std::string_view service, std::string_view method);

}  // namespace ferry::rpc
