#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/time_text.h"

namespace ferry::d2c {

// One Kafka record as fetched: no librdkafka types past the consumer.
struct KafkaHeader {
  std::string name;
  std::optional<std::string> value;  // raw bytes; nullopt for a null header
};

struct KafkaRecord {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<KafkaHeader> headers;
  std::optional<std::int64_t> timestamp_ms;  // the record's timestamp, if any

  // Bytes it occupies, for batch limits.
  [[nodiscard]] std::size_t size_bytes() const;
};

// Why a record went to the dead-letter table instead of the event store.
enum class DeadLetterReason {
  kMissingDevice,     // no key and no device header
  kInvalidDeviceId,   // empty, too long, not UTF-8 or with a NUL
  kDeviceMismatch,    // key and iothub-connection-device-id disagree
  kInvalidHeader,     // a header name or value is not UTF-8 text, or holds a NUL
  kInvalidTimestamp,  // an unparseable time header, or no time at all
  kExpired,           // a Hono ttl that has passed
  kTooLarge,          // over 256 KB as IoT Hub counts
  kOutOfRetention,    // enqueued before the oldest day partition
  kFutureTimestamp,   // enqueued after the newest day partition
  kDataError,         // PostgreSQL refused the row (isolated by splitting)
};

[[nodiscard]] std::string_view ReasonName(DeadLetterReason reason);

// A D2C message in IoT Hub's model, ready for the event store.
struct Event {
  std::string device_id;
  TimePoint enqueued_time;  // partition key: never the landing time
  std::optional<std::string> message_id;
  std::optional<std::string> correlation_id;
  std::optional<std::string> content_type;
  std::optional<std::string> content_encoding;
  std::optional<TimePoint> creation_time;
  // System properties under their wire names (iothub-*, message-id, ...),
  // application properties by name. Values are UTF-8 text.
  std::map<std::string, std::string> system_properties;
  std::map<std::string, std::string> application_properties;
  std::string body;
};

struct DeadLetter {
  DeadLetterReason reason;
  std::string detail;
};

// Either an event or a dead letter.
struct Decoded {
  std::optional<Event> event;
  std::optional<DeadLetter> dead_letter;
};

inline constexpr std::size_t kMaxD2cMessageBytes = 256 * 1024;

// Maps a record onto IoT Hub's model (docs/d2c-record-contract.md): IoT
// Hub's wire names, or Eclipse Hono's protocol-adapter headers (device_id,
// content-type, creation-time, ttl, qos). `now` decides Hono expiry. Pure.
[[nodiscard]] Decoded Decode(const KafkaRecord& record, TimePoint now);

// IoT Hub's size: body plus property names and values.
[[nodiscard]] std::size_t MessageSize(const Event& event);

// Whether `text` is valid UTF-8 without NUL bytes (what PostgreSQL text and
// jsonb accept).
[[nodiscard]] bool IsStorableText(std::string_view text);


}  // namespace ferry::d2c
