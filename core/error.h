#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace ferry {

// The domain's error reasons, named as IoT Hub names them
// (the error table in README.md). Each boundary translates these exactly once:
// database errors into reasons in the stores, reasons into grpc::Status in
// services/rpc/status.cc.
enum class Reason {
  kArgumentInvalid,
  kArgumentNull,
  kIotHubUnauthorizedAccess,
  kPermissionDenied,
  kDeviceNotFound,
  kDeviceAlreadyExists,
  kPreconditionFailed,
  kPolicyNotFound,
  kPolicyAlreadyExists,
  kPolicyLimitExceeded,
  kRouteNotFound,
  kEnrichmentNotFound,
  kRouteAlreadyExists,
  kEndpointNotFound,
  kEndpointAlreadyExists,
  kEndpointInUse,
  kRoutingLimitExceeded,
  kMessageTooLarge,
  kDeviceMaximumQueueDepthExceeded,
  kDeviceMessageLockLost,
  kMessageNotFound,
  kThrottlingException,
  kServerError,
  kServiceUnavailable,
};

// IoT Hub's reason name, e.g. "DeviceNotFound".
[[nodiscard]] std::string_view ReasonName(Reason reason);
// IoT Hub's numeric code, e.g. 404001.
[[nodiscard]] int IotHubCode(Reason reason);

// A domain error: the operation was refused or failed and changed nothing.
class Error final : public std::runtime_error {
 public:
  Error(Reason reason, const std::string& message);
  [[nodiscard]] Reason reason() const noexcept { return reason_; }

 private:
  Reason reason_;
};

}  // namespace ferry
