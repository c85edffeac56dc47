#include "core/error.h"

#include <gtest/gtest.h>

#include "services/rpc/status.h"

namespace ferry {
namespace {

TEST(Error, ReasonsCarryIotHubNamesAndCodes) {
  EXPECT_EQ(ReasonName(Reason::kDeviceNotFound), "DeviceNotFound");
  EXPECT_EQ(IotHubCode(Reason::kDeviceNotFound), 404001);
  EXPECT_EQ(ReasonName(Reason::kDeviceAlreadyExists), "DeviceAlreadyExists");
  EXPECT_EQ(IotHubCode(Reason::kDeviceAlreadyExists), 409001);
  EXPECT_EQ(ReasonName(Reason::kPreconditionFailed), "PreconditionFailed");
  EXPECT_EQ(IotHubCode(Reason::kPreconditionFailed), 412001);
  EXPECT_EQ(ReasonName(Reason::kArgumentInvalid), "ArgumentInvalid");
  EXPECT_EQ(IotHubCode(Reason::kArgumentInvalid), 400004);
  EXPECT_EQ(IotHubCode(Reason::kIotHubUnauthorizedAccess), 401002);
  EXPECT_EQ(IotHubCode(Reason::kServiceUnavailable), 503001);
}

TEST(Error, MapsToFittingGrpcCodes) {
  EXPECT_EQ(rpc::ToStatusCode(Reason::kDeviceNotFound), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(rpc::ToStatusCode(Reason::kDeviceAlreadyExists), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(rpc::ToStatusCode(Reason::kPreconditionFailed), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(rpc::ToStatusCode(Reason::kArgumentInvalid), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(rpc::ToStatusCode(Reason::kIotHubUnauthorizedAccess),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(rpc::ToStatusCode(Reason::kServiceUnavailable), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(rpc::ToStatusCode(Reason::kThrottlingException), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(Error, StatusMessageStartsWithTheReason) {
  const grpc::Status s =
      rpc::ToStatus(Error(Reason::kDeviceNotFound, "device \"x\" does not exist"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "DeviceNotFound: device \"x\" does not exist");
}

}  // namespace
}  // namespace ferry
