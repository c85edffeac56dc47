#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/auth/credentials.h"
#include "core/auth/sas.h"
#include "core/clock.h"

namespace ferry::auth {

// IoT Hub's shared access rules, decided from the `authorization` value of a
// call (README.md, "Access control"):
// - a policy token (skn present) is signed with either key of that policy,
//   scoped to {hub} (or, for a device-scoped call, anything covering
//   {hub}/devices/{id}), and grants the policy's permissions;
// - a device token (no skn) is signed with either key of the device the call
//   acts for, scoped to cover {hub}/devices/{id}, and grants DeviceConnect for
//   that device only; a disabled device is refused;
// - a token is refused once `se` plus the clock-skew allowance has passed.
// Throws ferry::Error: kIotHubUnauthorizedAccess (UNAUTHENTICATED) for a
// missing, malformed, expired, unknown-key or badly signed token;
// kPermissionDenied for a valid token without the right. Thread-safe.
class SasAuthorizer final {
 public:
  SasAuthorizer(std::string_view hub_host, CredentialSource& credentials, const Clock& clock,
                std::chrono::seconds clock_skew = std::chrono::seconds(60));

  [[nodiscard]] Caller Authorize(const AccessRequest& request,
                                 std::string_view authorization) const;

  [[nodiscard]] const std::string& hub_host() const { return hub_host_; }

 private:
  Caller AuthorizePolicy(const AccessRequest& request, const SasToken& token) const;
  Caller AuthorizeDevice(const AccessRequest& request, const SasToken& token) const;

  std::string hub_host_;
  CredentialSource& credentials_;
  const Clock& clock_;
  std::chrono::seconds clock_skew_;
};

// The resource a device acts under: {hub}/devices/{id}.
[[nodiscard]] std::string DeviceResource(std::string_view hub_host, std::string_view device_id);

}  // namespace ferry::auth
