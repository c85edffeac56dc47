#pragma once

#include <grpcpp/support/status.h>

#include "core/error.h"

namespace ferry::rpc {

// The one place domain reasons become gRPC codes. The message reads
// "<ReasonName>: <what happened>"; the reason also travels in the
// `ferry-error-reason` trailing metadata (and its numeric IoT Hub code in
// `ferry-error-code`), set by the RPC wrapper.
[[nodiscard]] grpc::StatusCode ToStatusCode(Reason reason);
[[nodiscard]] grpc::Status ToStatus(const Error& error);

inline constexpr char kReasonMetadataKey[] = "ferry-error-reason";
inline constexpr char kCodeMetadataKey[] = "ferry-error-code";

}  // namespace ferry::rpc
