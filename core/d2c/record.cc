#include "core/d2c/record.h"

#include <charconv>
#include <ctime>
#include <limits>

#include <fmt/format.h>

namespace ferry::d2c {
namespace {

constexpr std::string_view kDeviceHeader = "iothub-connection-device-id";
constexpr std::string_view kEnqueuedHeader = "iothub-enqueuedtime";

std::optional<std::int64_t> ParseInt(std::string_view text) {
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

// 2200-01-01T00:00:00Z in epoch milliseconds.
constexpr std::int64_t kMaxTimestampMs = 7258118400000;

Decoded Dead(DeadLetterReason reason, std::string detail) {
  return {std::nullopt, DeadLetter{reason, std::move(detail)}};
}

}  // namespace

std::string_view ReasonName(DeadLetterReason reason) {
  switch (reason) {
    case DeadLetterReason::kMissingDevice:
      return "missing_device";
    case DeadLetterReason::kInvalidDeviceId:
      return "invalid_device_id";
    case DeadLetterReason::kDeviceMismatch:
      return "device_mismatch";
    case DeadLetterReason::kInvalidHeader:
      return "invalid_header";
    case DeadLetterReason::kInvalidTimestamp:
      return "invalid_timestamp";
    case DeadLetterReason::kExpired:
      return "expired";
    case DeadLetterReason::kTooLarge:
      return "too_large";
    case DeadLetterReason::kOutOfRetention:
      return "out_of_retention";
    case DeadLetterReason::kFutureTimestamp:
      return "future_timestamp";
    case DeadLetterReason::kDataError:
      return "data_error";
  }
  return "data_error";
}

bool IsStorableTime(TimePoint t) {
  // Before 2200: far inside both PostgreSQL's range and that of TimePoint's
  // 64-bit nanoseconds (which ends in 2262).
  static const TimePoint kEnd{std::chrono::sys_days{std::chrono::year(2200) / 1 / 1}};
  return t >= TimePoint() && t < kEnd;
}

std::size_t KafkaRecord::size_bytes() const {
  std::size_t n = (key ? key->size() : 0) + (value ? value->size() : 0) + 64;
  for (const auto& h : headers) n += h.name.size() + (h.value ? h.value->size() : 0);
  return n;
}

bool IsStorableText(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<std::size_t>(len) > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += static_cast<std::size_t>(len);
  }
  return true;
}

bool BatchDue(std::size_t records, std::size_t bytes, std::chrono::milliseconds waited,
              std::chrono::milliseconds linger, const BatchLimits& limits, bool flush) {
  if (records == 0) return false;
  return flush || records >= limits.max_records || bytes >= limits.max_bytes || waited >= linger;
}

std::size_t TakeBatch(std::deque<KafkaRecord>& buffer, const BatchLimits& limits,
                      std::vector<KafkaRecord>& out) {
  std::size_t bytes = 0;
  while (!buffer.empty() && out.size() < limits.max_records &&
         (out.empty() || bytes + buffer.front().size_bytes() <= limits.max_bytes)) {
    bytes += buffer.front().size_bytes();
    out.push_back(std::move(buffer.front()));
    buffer.pop_front();
  }
  return bytes;
}

bool IsSystemProperty(std::string_view name) {
  // IoT Hub's D2C system properties by wire name (and Event Hubs' x-opt-*
  // annotations). Other iothub-* names are application properties.
  static constexpr std::string_view kNames[] = {
      "message-id",
      "correlation-id",
      "content-type",
      "content-encoding",
      "user-id",
      "to",
      "absolute-expiry-time",
      "dt-subject",
      "dt-dataschema",
      "iothub-enqueuedtime",
      "iothub-creation-time-utc",
      "iothub-app-iothub-creation-time-utc",
      "iothub-connection-device-id",
      "iothub-connection-module-id",
      "iothub-connection-auth-generation-id",
      "iothub-connection-auth-method",
      "iothub-message-source",
      "iothub-interface-name",
  };
  for (const auto n : kNames) {
    if (n == name) return true;
  }
  return name.rfind("x-opt-", 0) == 0;
}

bool IsStampedProperty(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "iothub-connection-device-id",
      "iothub-connection-module-id",
      "iothub-connection-auth-generation-id",
      "iothub-connection-auth-method",
      "iothub-enqueuedtime",
      "iothub-message-source",
  };
  for (const auto n : kNames) {
    if (n == name) return true;
  }
  return false;
}

std::size_t PropertySize(std::string_view name, std::string_view value) {
  if (IsStampedProperty(name)) return 0;
  return IsSystemProperty(name) ? value.size() : name.size() + value.size();
}

namespace {

std::size_t Size(const Event& e, const std::map<std::string, std::string>& application_properties) {
  std::size_t n = e.body.size();
  for (const auto& [k, v] : e.system_properties) n += PropertySize(k, v);
  for (const auto& [k, v] : application_properties) n += PropertySize(k, v);
  return n;
}

}  // namespace

std::size_t MessageSize(const Event& e) {
  return Size(e, e.application_properties);
}

std::size_t MessageSize(const Event& e,
                        const std::vector<std::pair<std::string, std::string>>& extra) {
  if (extra.empty()) return MessageSize(e);
  std::map<std::string, std::string> app = e.application_properties;
  for (const auto& [k, v] : extra) app[k] = v;
  return Size(e, app);
}

Decoded Decode(const KafkaRecord& r, TimePoint now) {
  Event e;
  e.body = r.value.value_or("");
  bool hono = false;
  std::optional<std::string> header_device;
  std::optional<std::string> enqueued_text;
  std::optional<std::int64_t> hono_creation_ms, hono_ttl_ms;

  for (const KafkaHeader& h : r.headers) {
    if (!IsStorableText(h.name) || h.name.empty()) {
      return Dead(DeadLetterReason::kInvalidHeader, "a header name is not UTF-8 text");
    }
    const std::string value = h.value.value_or("");
    if (!IsStorableText(value)) {
      return Dead(DeadLetterReason::kInvalidHeader,
                  fmt::format("header '{}' is not UTF-8 text or holds a NUL byte", h.name));
    }
    if (h.name == kDeviceHeader) {
      header_device = value;
    } else if (h.name == "device_id") {
      hono = true;
      header_device = value;
      continue;
    } else if (h.name == "creation-time") {
      hono = true;
      hono_creation_ms = ParseInt(value);
      if (!hono_creation_ms) {
        return Dead(DeadLetterReason::kInvalidTimestamp, "creation-time is not epoch milliseconds");
      }
      if (*hono_creation_ms < 0 || *hono_creation_ms >= kMaxTimestampMs) {
        return Dead(DeadLetterReason::kInvalidTimestamp, "creation-time is outside 1970 to 2199");
      }
      e.creation_time = TimePoint(std::chrono::duration_cast<TimePoint::duration>(
          std::chrono::milliseconds(*hono_creation_ms)));
      continue;
    } else if (h.name == "ttl") {
      hono = true;
      hono_ttl_ms = ParseInt(value);
      if (!hono_ttl_ms) return Dead(DeadLetterReason::kInvalidHeader, "ttl is not milliseconds");
      continue;
    } else if (h.name == "qos") {
      hono = true;
      continue;
    }
    if (h.name == kEnqueuedHeader) enqueued_text = value;
    if (h.name == "message-id") e.message_id = value;
    if (h.name == "correlation-id") e.correlation_id = value;
    if (h.name == "content-type") e.content_type = value;
    if (h.name == "content-encoding") e.content_encoding = value;
    if (h.name == "iothub-creation-time-utc") {
      e.creation_time = ParseTime(value);
      if (!e.creation_time) {
        return Dead(DeadLetterReason::kInvalidTimestamp, "iothub-creation-time-utc is not a time");
      }
    }
    (IsSystemProperty(h.name) ? e.system_properties : e.application_properties)[h.name] = value;
  }

  // The device: the key, checked against the header when both are present.
  if (r.key && header_device && *r.key != *header_device) {
    return Dead(DeadLetterReason::kDeviceMismatch,
                fmt::format("key and {} disagree", hono ? "device_id" : kDeviceHeader));
  }
  if (r.key) {
    e.device_id = *r.key;
  } else if (header_device) {
    e.device_id = *header_device;
  } else {
    return Dead(DeadLetterReason::kMissingDevice, "no key and no device header");
  }
  if (e.device_id.empty() || e.device_id.size() > 128 || !IsStorableText(e.device_id)) {
    return Dead(DeadLetterReason::kInvalidDeviceId, "device id is empty, too long or not text");
  }
  e.system_properties[std::string(kDeviceHeader)] = e.device_id;

  if (hono && hono_ttl_ms && hono_creation_ms) {
    // creation-time is inside 1970 to 2199 (checked above); a ttl past
    // what int64 milliseconds can add to it never expires.
    const std::int64_t creation = *hono_creation_ms;
    const std::int64_t ttl = *hono_ttl_ms;
    const bool never = ttl > 0 && creation > std::numeric_limits<std::int64_t>::max() - ttl;
    const auto now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    if (!never && now_ms > creation + ttl) {
      return Dead(DeadLetterReason::kExpired, "Hono ttl has passed");
    }
  }

  if (enqueued_text) {
    const auto t = ParseTime(*enqueued_text);
    if (!t) return Dead(DeadLetterReason::kInvalidTimestamp, "iothub-enqueuedtime is not a time");
    e.enqueued_time = *t;
  } else if (r.timestamp_ms && (*r.timestamp_ms < 0 || *r.timestamp_ms >= kMaxTimestampMs)) {
    return Dead(DeadLetterReason::kInvalidTimestamp,
                "the record timestamp is outside 1970 to 2199");
  } else if (r.timestamp_ms) {
    e.enqueued_time = TimePoint(std::chrono::duration_cast<TimePoint::duration>(
        std::chrono::milliseconds(*r.timestamp_ms)));
    e.system_properties[std::string(kEnqueuedHeader)] = FormatTime(e.enqueued_time);
  } else {
    return Dead(DeadLetterReason::kInvalidTimestamp,
                "no iothub-enqueuedtime and no record timestamp");
  }
  if (!IsStorableTime(e.enqueued_time) || (e.creation_time && !IsStorableTime(*e.creation_time))) {
    return Dead(DeadLetterReason::kInvalidTimestamp, "a time outside the years 1970 to 2199");
  }
  if (hono && e.content_type) e.system_properties["content-type"] = *e.content_type;

  if (const std::size_t size = MessageSize(e); size > kMaxD2cMessageBytes) {
    return Dead(DeadLetterReason::kTooLarge,
                fmt::format("{} bytes as IoT Hub counts (body, system property values, application "
                            "property names and values); the limit is 256 KB ({} bytes)",
                            size, kMaxD2cMessageBytes));
  }
  return {std::move(e), std::nullopt};
}

}  // namespace ferry::d2c
