#include "services/rpc/method_rules.h"

#include <array>

namespace ferry::rpc {
namespace {

using auth::Permission;

constexpr std::array kRules = {
    MethodRule{"ferry.v1.Registry", "CreateDevice", Permission::kRegistryWrite, false,
               Throttle::kRegistry},
    MethodRule{"ferry.v1.Registry", "GetDevice", Permission::kRegistryRead, false,
               Throttle::kRegistry},
    MethodRule{"ferry.v1.Registry", "UpdateDevice", Permission::kRegistryWrite, false,
               Throttle::kRegistry},
    MethodRule{"ferry.v1.Registry", "DeleteDevice", Permission::kRegistryWrite, false,
               Throttle::kRegistry},
    MethodRule{"ferry.v1.Registry", "ListDevices", Permission::kRegistryRead, false,
               Throttle::kRegistry},
    MethodRule{"ferry.v1.Registry", "RegenerateDeviceKey", Permission::kRegistryWrite, false,
               Throttle::kRegistry},
    MethodRule{"ferry.v1.AccessPolicies", "CreatePolicy", Permission::kHubOwner},
    MethodRule{"ferry.v1.AccessPolicies", "GetPolicy", Permission::kHubOwner},
    MethodRule{"ferry.v1.AccessPolicies", "ListPolicies", Permission::kHubOwner},
    MethodRule{"ferry.v1.AccessPolicies", "UpdatePolicy", Permission::kHubOwner},
    MethodRule{"ferry.v1.AccessPolicies", "DeletePolicy", Permission::kHubOwner},
    MethodRule{"ferry.v1.AccessPolicies", "RegeneratePolicyKey", Permission::kHubOwner},
    MethodRule{"ferry.v1.DeviceMessaging", "SendEvent", Permission::kDeviceConnect, true,
               Throttle::kD2cSend},
    MethodRule{"ferry.v1.DeviceMessaging", "SendEventBatch", Permission::kDeviceConnect, true,
               Throttle::kD2cSend},
    MethodRule{"ferry.v1.DeviceMessaging", "Receive", Permission::kDeviceConnect, true,
               Throttle::kC2dReceive},
    MethodRule{"ferry.v1.DeviceMessaging", "Complete", Permission::kDeviceConnect, true},
    MethodRule{"ferry.v1.DeviceMessaging", "Abandon", Permission::kDeviceConnect, true},
    MethodRule{"ferry.v1.DeviceMessaging", "Reject", Permission::kDeviceConnect, true},
    MethodRule{"ferry.v1.DeviceMessaging", "Subscribe", Permission::kDeviceConnect, true},
    MethodRule{"ferry.v1.Routing", "CreateEndpoint", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "ListEndpoints", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "DeleteEndpoint", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "CreateRoute", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "UpdateRoute", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "GetRoute", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "ListRoutes", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "DeleteRoute", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "GetSettings", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "SetFallback", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "TestRoute", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "TestAllRoutes", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "SetEnrichment", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "ListEnrichments", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Routing", "DeleteEnrichment", Permission::kServiceConnect},
    MethodRule{"ferry.v1.CloudToDevice", "Send", Permission::kServiceConnect, false,
               Throttle::kC2dSend},
    MethodRule{"ferry.v1.Feedback", "Receive", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Feedback", "Complete", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Feedback", "Abandon", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Feedback", "Watch", Permission::kServiceConnect},
    MethodRule{"ferry.v1.CloudToDevice", "PurgeQueue", Permission::kServiceConnect},
    MethodRule{"ferry.v1.CloudToDevice", "GetMessage", Permission::kServiceConnect},
    MethodRule{"ferry.v1.CloudToDevice", "ListQueue", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Events", "ReadEvents", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Events", "TailEvents", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Events", "ListCheckpoints", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Events", "ResetCheckpoints", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Events", "ListDeadLetters", Permission::kServiceConnect},
    MethodRule{"ferry.v1.Events", "RedriveDeadLetters", Permission::kServiceConnect},
    MethodRule{"ferry.v1.AuditLog", "ListAuditRecords", Permission::kServiceConnect},
    // gRPC's built-in health service: no token, by design (probes).
    MethodRule{"grpc.health.v1.Health", "Check", Permission::kNone},
    MethodRule{"grpc.health.v1.Health", "Watch", Permission::kNone},
};

}  // namespace

std::span<const MethodRule> MethodRules() {
  return kRules;
}

const MethodRule* FindMethodRule(std::string_view service, std::string_view method) {
  for (const MethodRule& rule : kRules) {
    if (rule.service == service && rule.method == method) return &rule;
  }
  return nullptr;
}

}  // namespace ferry::rpc
