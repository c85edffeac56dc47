#pragma once

#include <string>
#include <string_view>

#include "core/device_id.h"

namespace ferry::registry {

// IoT Hub's identity rules. Each Validate* throws
// ferry::Error(kArgumentInvalid) naming the field and the rule broken.

using ferry::IsDeviceIdChar;
using ferry::kMaxDeviceIdLength;
using ferry::ValidateDeviceId;

inline constexpr std::size_t kMaxStatusReasonLength = 128;

// At most 128 characters (UTF-8 code points).
void ValidateStatusReason(std::string_view reason);
// Base64 of 16 to 64 bytes.
void ValidateSymmetricKey(std::string_view key, std::string_view field);

// 32 random bytes, base64: what IoT Hub generates.
[[nodiscard]] std::string NewSymmetricKey();
// A random 18-digit decimal, distinct for each creation of the same id.
[[nodiscard]] std::string NewGenerationId();
// A random opaque token, new on every write.
[[nodiscard]] std::string NewEtag();

// RFC 7232 If-Match: empty or "*" matches anything; otherwise the etag,
// optionally quoted and with a weak "W/" prefix, must equal `current`.
[[nodiscard]] bool EtagMatches(std::string_view if_match, std::string_view current);

// Opaque page tokens for listing in id order.
[[nodiscard]] std::string EncodePageToken(std::string_view last_id);
// Throws ferry::Error(kArgumentInvalid) on a token this server did not make.
[[nodiscard]] std::string DecodePageToken(std::string_view token);

}  // namespace ferry::registry
