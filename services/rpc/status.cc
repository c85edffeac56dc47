#include "services/rpc/status.h"

#include <string>

namespace ferry::rpc {

grpc::StatusCode ToStatusCode(Reason reason) {
  switch (reason) {
    case Reason::kArgumentInvalid:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case Reason::kArgumentNull:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case Reason::kIotHubUnauthorizedAccess:
      return grpc::StatusCode::UNAUTHENTICATED;
    case Reason::kPermissionDenied:
      return grpc::StatusCode::PERMISSION_DENIED;
    case Reason::kDeviceNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case Reason::kDeviceAlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case Reason::kPreconditionFailed:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case Reason::kPolicyNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case Reason::kPolicyAlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case Reason::kPolicyLimitExceeded:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Reason::kRouteNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case Reason::kDeviceMaximumQueueDepthExceeded:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Reason::kDeviceMessageLockLost:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case Reason::kMessageNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case Reason::kEnrichmentNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case Reason::kRouteAlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case Reason::kEndpointNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case Reason::kEndpointAlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case Reason::kEndpointInUse:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case Reason::kRoutingLimitExceeded:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Reason::kMessageTooLarge:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case Reason::kThrottlingException:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Reason::kServerError:
      return grpc::StatusCode::INTERNAL;
    case Reason::kServiceUnavailable:
      return grpc::StatusCode::UNAVAILABLE;
  }
  return grpc::StatusCode::INTERNAL;
}

grpc::Status ToStatus(const Error& error) {
  return {ToStatusCode(error.reason()),
          std::string(ReasonName(error.reason())) + ": " + error.what()};
}

}  // namespace ferry::rpc
