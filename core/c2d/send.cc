#include "core/c2d/send.h"

#include <cctype>
#include <string_view>

#include <fmt/format.h>

#include "core/device_id.h"
#include "core/error.h"

namespace ferry::c2d {
namespace {

bool IsAsciiAlnum(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x80 && std::isalnum(u) != 0;
}

bool IsMessageIdChar(char c) {
  return IsDeviceIdChar(c) || c == ':' || c == ';';
}

bool IsPropertyChar(char c) {
  return IsAsciiAlnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void ValidateId(const std::string& id, std::string_view field) {
  if (id.empty()) return;
  bool ok = id.size() <= kMaxC2dIdLength;
  for (const char c : id) ok = ok && IsMessageIdChar(c);
  if (!ok) {
    throw Error(
        Reason::kArgumentInvalid,
        fmt::format(
            "{} must be 1 to 128 ASCII letters, digits or - : . + % _ # * ? ! ( ) , = @ ; $ '",
            field));
  }
}

void ValidateProperty(const std::string& text, std::string_view what) {
  bool ok = true;
  for (const char c : text) ok = ok && IsPropertyChar(c);
  if (!ok || (what == "name" && text.empty())) {
    throw Error(Reason::kArgumentInvalid,
                fmt::format("property {} '{}' may hold only ASCII letters, digits and ! # $ % & ' "
                            "* + - . ^ _ ` | ~",
                            what, text.substr(0, 64)));
  }
}

}  // namespace

OutgoingMessage ValidateSend(const SendRequest& req, TimePoint now,
                             std::chrono::seconds default_ttl,
                             const std::function<std::string()>& new_message_id) {
  ValidateDeviceId(req.device_id);
  ValidateId(req.message_id, "message_id");
  ValidateId(req.correlation_id, "correlation_id");
  ValidateId(req.user_id, "user_id");
  OutgoingMessage out;
  out.device_id = req.device_id;
  out.message_id = req.message_id.empty() ? new_message_id() : req.message_id;
  if (!req.correlation_id.empty()) out.correlation_id = req.correlation_id;
  if (!req.user_id.empty()) out.user_id = req.user_id;
  out.ack = req.ack;
  if (req.expiry_time && req.ttl)
    throw Error(Reason::kArgumentInvalid, "give expiry_time or ttl, not both");
  // Compared in microseconds, clamped, so that no time far in the past or
  // future overflows on the way.
  std::chrono::microseconds ttl = default_ttl;
  if (req.ttl) ttl = *req.ttl;
  if (req.expiry_time) {
    constexpr auto kFar = std::chrono::microseconds(kMaxTtl) * 2;
    const TimePoint at = *req.expiry_time;
    ttl = at <= now - kFar   ? -kFar
          : at >= now + kFar ? kFar
                             : std::chrono::duration_cast<std::chrono::microseconds>(at - now);
  }
  if (ttl < kMinTtl || ttl > kMaxTtl) {
    throw Error(Reason::kArgumentInvalid, "the message must expire 1 minute to 2 days from now");
  }
  out.expires_at = now + ttl;
  if (req.content_type.size() > 256 || req.content_encoding.size() > 256) {
    throw Error(Reason::kArgumentInvalid, "content type and encoding: at most 256 characters");
  }
  if (!req.content_type.empty()) out.content_type = req.content_type;
  if (!req.content_encoding.empty()) out.content_encoding = req.content_encoding;
  std::size_t size = req.body.size() + out.message_id.size() + req.correlation_id.size() +
                     req.user_id.size() + req.content_type.size() + req.content_encoding.size() +
                     AckName(out.ack).size();
  if (req.properties.size() > kMaxC2dProperties) {
    throw Error(Reason::kArgumentInvalid,
                fmt::format("at most {} application properties", kMaxC2dProperties));
  }
  for (const auto& [k, v] : req.properties) {
    ValidateProperty(k, "name");
    ValidateProperty(v, "value");
    if (!out.properties.emplace(k, v).second) {
      throw Error(Reason::kArgumentInvalid,
                  fmt::format("property '{}' is given twice", k.substr(0, 64)));
    }
    size += k.size() + v.size();
  }
  if (size > kMaxC2dMessageBytes) {
    throw Error(Reason::kMessageTooLarge,
                fmt::format("the message is {} bytes as IoT Hub counts; at most 64 KB", size));
  }
  out.body = req.body;
  return out;
}

}  // namespace ferry::c2d
