#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/c2d/lifecycle.h"
#include "core/clock.h"

// IoT Hub's rules for what an operator may send to a device (docs/c2d.md),
// as pure code: the gRPC service maps its request onto
// SendRequest, and the fuzzer feeds it arbitrary bytes.

namespace ferry::c2d {

inline constexpr std::size_t kMaxC2dMessageBytes = 64 * 1024;
inline constexpr std::size_t kMaxC2dProperties = 128;
inline constexpr std::size_t kMaxC2dIdLength = 128;
inline constexpr std::chrono::seconds kMinTtl{60};
inline constexpr std::chrono::seconds kMaxTtl{2 * 24 * 3600};

// A send as asked, nothing checked yet.
struct SendRequest {
  std::string device_id;
  std::string message_id;  // empty: one is generated
  std::string correlation_id;
  std::string user_id;
  Ack ack = Ack::kNone;
  std::optional<std::chrono::microseconds> ttl;
  std::optional<TimePoint> expiry_time;
  std::string content_type;
  std::string content_encoding;
  std::vector<std::pair<std::string, std::string>> properties;
  std::string body;
};

// A send that passed every check, ready for the store.
struct OutgoingMessage {
  std::string device_id;
  std::string message_id;  // validated, or generated
  std::optional<std::string> correlation_id;
  std::optional<std::string> user_id;
  Ack ack = Ack::kNone;
  TimePoint expires_at;
  std::optional<std::string> content_type;
  std::optional<std::string> content_encoding;
  std::map<std::string, std::string> properties;
  std::string body;
};

// Checks ids, property characters and count, content type and encoding
// lengths, expiry (1 minute to 2 days from `now`, `default_ttl` when neither
// ttl nor expiry_time is given) and 64 KB as IoT Hub counts (body plus
// system and application properties). `new_message_id` makes the id when the
// request has none. Throws ferry::Error(kArgumentInvalid or kMessageTooLarge).
[[nodiscard]] OutgoingMessage ValidateSend(const SendRequest& request, TimePoint now,
                                           std::chrono::seconds default_ttl,
                                           const std::function<std::string()>& new_message_id);

}  // namespace ferry::c2d
