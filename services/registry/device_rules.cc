#include "services/registry/device_rules.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"

namespace ferry::registry {
namespace {

std::string RandomBytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return out;
}

std::string Base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// Strict standard base64 with padding; nullopt-like empty result + ok=false on error.
bool DecodeBase64(std::string_view text, std::string& out) {
  if (text.empty() || text.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool alpha = std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
    const bool pad = c == '=' && i + 2 >= text.size();
    if (!alpha && !pad) return false;
  }
  std::string buf(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(buf.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return false;
  std::size_t len = static_cast<std::size_t>(n);
  if (text.back() == '=') --len;
  if (text.size() > 1 && text[text.size() - 2] == '=') --len;
  buf.resize(len);
  out = std::move(buf);
  return true;
}

std::size_t Utf8Length(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

}  // namespace

bool IsDeviceIdChar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 0x80) {
    return true;
  }
  constexpr std::string_view kSpecial = "-.+%_#*?!(),=@$'";
  return kSpecial.find(c) != std::string_view::npos;
}

void ValidateDeviceId(std::string_view id) {
  if (id.empty()) throw Error(Reason::kArgumentInvalid, "device id is required");
  if (id.size() > kMaxDeviceIdLength) {
    throw Error(Reason::kArgumentInvalid,
                fmt::format("device id is {} characters long; at most {} are allowed", id.size(),
                            kMaxDeviceIdLength));
  }
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (!IsDeviceIdChar(id[i])) {
      throw Error(Reason::kArgumentInvalid,
                  fmt::format("device id has a character not allowed at position {} (allowed: "
                              "ASCII letters, digits and - . + % _ # * ? ! ( ) , = @ $ ')",
                              i));
    }
  }
}

void ValidateStatusReason(std::string_view reason) {
  if (Utf8Length(reason) > kMaxStatusReasonLength) {
    throw Error(Reason::kArgumentInvalid,
                fmt::format("status reason is longer than {} characters", kMaxStatusReasonLength));
  }
}

void ValidateSymmetricKey(std::string_view key, std::string_view field) {
  std::string decoded;
  if (!DecodeBase64(key, decoded)) {
    throw Error(Reason::kArgumentInvalid, fmt::format("{} is not valid base64", field));
  }
  if (decoded.size() < 16 || decoded.size() > 64) {
    throw Error(Reason::kArgumentInvalid,
                fmt::format("{} decodes to {} bytes; it must be 16 to 64 bytes", field,
                            decoded.size()));
  }
}

std::string NewSymmetricKey() { return Base64(RandomBytes(32)); }

std::string NewGenerationId() {
  const std::string bytes = RandomBytes(8);
  std::uint64_t v = 0;
  for (const char b : bytes) v = (v << 8) | static_cast<unsigned char>(b);
  // 18 digits, never starting with 0.
  return std::to_string(100000000000000000ULL + v % 900000000000000000ULL);
}

std::string NewEtag() { return Base64(RandomBytes(9)); }

bool EtagMatches(std::string_view if_match, std::string_view current) {
  if (if_match.empty() || if_match == "*") return true;
  if (if_match.substr(0, 2) == "W/") if_match.remove_prefix(2);
  if (if_match.size() >= 2 && if_match.front() == '"' && if_match.back() == '"') {
    if_match = if_match.substr(1, if_match.size() - 2);
  }
  return if_match == current;
}

std::string EncodePageToken(std::string_view last_id) { return Base64(last_id); }

std::string DecodePageToken(std::string_view token) {
  std::string id;
  if (!DecodeBase64(token, id)) {
    throw Error(Reason::kArgumentInvalid, "page token is not one this server issued");
  }
  ValidateDeviceId(id);
  return id;
}

}  // namespace ferry::registry
