#include "core/error.h"

namespace ferry {

std::string_view ReasonName(Reason reason) {
  switch (reason) {
    case Reason::kArgumentInvalid:
      return "ArgumentInvalid";
    case Reason::kArgumentNull:
      return "ArgumentNull";
    case Reason::kIotHubUnauthorizedAccess:
      return "IotHubUnauthorizedAccess";
    case Reason::kPermissionDenied:
      return "PermissionDenied";
    case Reason::kDeviceNotFound:
      return "DeviceNotFound";
    case Reason::kDeviceAlreadyExists:
      return "DeviceAlreadyExists";
    case Reason::kPreconditionFailed:
      return "PreconditionFailed";
    case Reason::kPolicyNotFound:
      return "PolicyNotFound";
    case Reason::kPolicyAlreadyExists:
      return "PolicyAlreadyExists";
    case Reason::kPolicyLimitExceeded:
      return "PolicyLimitExceeded";
    case Reason::kRouteNotFound:
      return "RouteNotFound";
    case Reason::kDeviceMaximumQueueDepthExceeded:
      return "DeviceMaximumQueueDepthExceeded";
    case Reason::kDeviceMessageLockLost:
      return "DeviceMessageLockLost";
    case Reason::kMessageNotFound:
      return "MessageNotFound";
    case Reason::kEnrichmentNotFound:
      return "EnrichmentNotFound";
    case Reason::kRouteAlreadyExists:
      return "RouteAlreadyExists";
    case Reason::kEndpointNotFound:
      return "EndpointNotFound";
    case Reason::kEndpointAlreadyExists:
      return "EndpointAlreadyExists";
    case Reason::kEndpointInUse:
      return "EndpointInUse";
    case Reason::kRoutingLimitExceeded:
      return "RoutingLimitExceeded";
    case Reason::kMessageTooLarge:
      return "MessageTooLarge";
    case Reason::kThrottlingException:
      return "ThrottlingException";
    case Reason::kServerError:
      return "ServerError";
    case Reason::kServiceUnavailable:
      return "ServiceUnavailable";
  }
  return "ServerError";
}

int IotHubCode(Reason reason) {
  switch (reason) {
    case Reason::kArgumentInvalid:
      return 400004;
    case Reason::kArgumentNull:
      return 400005;
    case Reason::kIotHubUnauthorizedAccess:
      return 401002;
    case Reason::kPermissionDenied:
      return 401000;
    case Reason::kDeviceNotFound:
      return 404001;
    case Reason::kDeviceAlreadyExists:
      return 409001;
    case Reason::kPreconditionFailed:
      return 412001;
    case Reason::kPolicyNotFound:
      return 404000;
    case Reason::kPolicyAlreadyExists:
      return 409000;
    case Reason::kPolicyLimitExceeded:
      return 403000;
    case Reason::kRouteNotFound:
      return 404000;
    case Reason::kDeviceMaximumQueueDepthExceeded:
      return 403004;
    case Reason::kDeviceMessageLockLost:
      return 412002;
    case Reason::kMessageNotFound:
      return 404000;
    case Reason::kEnrichmentNotFound:
      return 404000;
    case Reason::kRouteAlreadyExists:
      return 409000;
    case Reason::kEndpointNotFound:
      return 404000;
    case Reason::kEndpointAlreadyExists:
      return 409000;
    case Reason::kEndpointInUse:
      return 412000;
    case Reason::kRoutingLimitExceeded:
      return 403000;
    case Reason::kMessageTooLarge:
      return 413001;
    case Reason::kThrottlingException:
      return 429001;
    case Reason::kServerError:
      return 500001;
    case Reason::kServiceUnavailable:
      return 503001;
  }
  return 500001;
}

Error::Error(Reason reason, const std::string& message)
    : std::runtime_error(message), reason_(reason) {}

}  // namespace ferry
