#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::auth {

// IoT Hub's shared access signature:
//   SharedAccessSignature sr={url-encoded resource}&sig={url-encoded base64
//   HMAC-SHA256}&se={unix seconds}[&skn={policy name}]
// in any field order. Pure functions: no clock, no storage.

struct SasToken {
  std::string resource;                 // decoded, lower-cased
  std::string raw_resource;             // sr exactly as it appeared (still URL-encoded)
  std::string signature;                // decoded base64 text
  std::int64_t expiry = 0;              // seconds since the Unix epoch
  std::optional<std::string> key_name;  // skn: a policy name; absent for device keys
};

// Throws ferry::Error(kIotHubUnauthorizedAccess) naming what is malformed.
[[nodiscard]] SasToken ParseSasToken(std::string_view header);

// Base64 HMAC-SHA256 keyed with the base64-decoded `key` over
// `{url-encoded lower-case resource}\n{expiry}`. Throws
// ferry::Error(kArgumentInvalid) when the key is not base64.
[[nodiscard]] std::string Sign(std::string_view resource, std::int64_t expiry,
                               std::string_view base64_key);

// A whole `SharedAccessSignature ...` value for `resource`.
[[nodiscard]] std::string MakeSasToken(std::string_view resource, std::string_view base64_key,
                                       std::int64_t expiry,
                                       std::optional<std::string_view> key_name = std::nullopt);

// Whether `key` signed `token`, compared in constant time. Accepts the
// signature over sr as sent and over Ferry's canonical encoding of it (SDKs
// differ in which characters they percent-encode).
[[nodiscard]] bool SignedWith(const SasToken& token, std::string_view base64_key);

// Whether a token for `granted` may act on `target`: same host and `granted`'s
// path a prefix of `target`'s by whole segments, case-insensitively
// ("h/devices" covers "h/devices/d1", not "h/devicesx").
[[nodiscard]] bool ResourceCovers(std::string_view granted, std::string_view target);

// Percent-encoding of everything but A-Z a-z 0-9 - _ . ~ (upper-case hex).
[[nodiscard]] std::string UrlEncode(std::string_view text);
// Decodes %XX and '+' (as a space). Throws ferry::Error(kIotHubUnauthorizedAccess)
// on a bad escape.
[[nodiscard]] std::string UrlDecode(std::string_view text);

[[nodiscard]] std::string ToLower(std::string_view text);

}  // namespace ferry::auth
