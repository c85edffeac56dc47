#include "services/registry/device_rules.h"

#include <array>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "core/auth/base64.h"
#include "core/error.h"

namespace ferry::registry {
namespace {

using auth::Base64Decode;
using auth::Base64Encode;
using auth::RandomBytes;

std::size_t Utf8Length(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

}  // namespace

void ValidateStatusReason(std::string_view reason) {
  if (Utf8Length(reason) > kMaxStatusReasonLength) {
    throw Error(Reason::kArgumentInvalid,
                fmt::format("status reason is longer than {} characters", kMaxStatusReasonLength));
  }
}

void ValidateSymmetricKey(std::string_view key, std::string_view field) {
  const auto decoded = Base64Decode(key);
  if (!decoded) {
    throw Error(Reason::kArgumentInvalid, fmt::format("{} is not valid base64", field));
  }
  if (decoded->size() < 16 || decoded->size() > 64) {
    throw Error(
        Reason::kArgumentInvalid,
        fmt::format("{} decodes to {} bytes; it must be 16 to 64 bytes", field, decoded->size()));
  }
}

std::string NewSymmetricKey() {
  return Base64Encode(RandomBytes(32));
}

std::string NewGenerationId() {
  const std::string bytes = RandomBytes(8);
  std::uint64_t v = 0;
  for (const char b : bytes) v = (v << 8) | static_cast<unsigned char>(b);
  // 18 digits, never starting with 0.
  return std::to_string(100000000000000000ULL + v % 900000000000000000ULL);
}

std::string NewEtag() {
  return Base64Encode(RandomBytes(9));
}

bool EtagMatches(std::string_view if_match, std::string_view current) {
  if (if_match.empty() || if_match == "*") return true;
  if (if_match.substr(0, 2) == "W/") if_match.remove_prefix(2);
  if (if_match.size() >= 2 && if_match.front() == '"' && if_match.back() == '"') {
    if_match = if_match.substr(1, if_match.size() - 2);
  }
  return if_match == current;
}

std::string EncodePageToken(std::string_view last_id) {
  return Base64Encode(last_id);
}

std::string DecodePageToken(std::string_view token) {
  const auto id = Base64Decode(token);
  bool valid = id.has_value() && !id->empty() && id->size() <= kMaxDeviceIdLength;
  for (std::size_t i = 0; valid && i < id->size(); ++i) valid = IsDeviceIdChar((*id)[i]);
  if (!valid) throw Error(Reason::kArgumentInvalid, "page token is not one this server issued");
  return *id;
}

}  // namespace ferry::registry
