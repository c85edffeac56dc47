#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
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

// A record to produce: a D2C message for a Kafka endpoint or the events
// topic, in the record contract (docs/d2c-record-contract.md): key the device
// id, value the body, headers its properties.
struct OutgoingRecord {
  std::string topic;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
  std::int64_t timestamp_ms = 0;
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

// IoT Hub's limit for one D2C message, and for a batch in all (MessageSize).
inline constexpr std::size_t kMaxD2cMessageBytes = 256 * 1024;

// Batch limits: a batch is cut when it holds max_records records or adding
// the next would pass max_bytes (a single larger record still makes a batch
// of one), or when the oldest buffered record has waited `linger`.
struct BatchLimits {
  std::size_t max_records = 2000;
  std::size_t max_bytes = 4 << 20;
};

// Whether a buffer of `records` records and `bytes` bytes, the oldest
// buffered `waited` ago, should be landed now.
[[nodiscard]] bool BatchDue(std::size_t records, std::size_t bytes,
                            std::chrono::milliseconds waited, std::chrono::milliseconds linger,
                            const BatchLimits& limits, bool flush);

// Moves the next batch off the front of `buffer` (offset order kept) and
// returns its size in bytes.
std::size_t TakeBatch(std::deque<KafkaRecord>& buffer, const BatchLimits& limits,
                      std::vector<KafkaRecord>& out);

// Maps a record onto IoT Hub's model (docs/d2c-record-contract.md): IoT
// Hub's wire names, or Eclipse Hono's protocol-adapter headers (device_id,
// content-type, creation-time, ttl, qos). `now` decides Hono expiry. Pure.
[[nodiscard]] Decoded Decode(const KafkaRecord& record, TimePoint now);

// Whether a header is one of IoT Hub's system properties (its wire names:
// message-id, content-type, iothub-enqueuedtime, ...); every other header is
// an application property. IoT Hub's list, not a prefix: lifecycle events'
// `iothub-message-schema` is an application property there, and here.
[[nodiscard]] bool IsSystemProperty(std::string_view name);

// Whether a system property is one that the hub stamps itself on every
// message (the connection's device, generation and auth method, the
// enqueued time, the message source), never the sender.
[[nodiscard]] bool IsStampedProperty(std::string_view name);

// What one property adds to IoT Hub's message size: system properties count
// their value, application properties their name and value, and the stamped
// ones nothing (the sender did not write them, so they cannot make an
// accepted message too large later).
[[nodiscard]] std::size_t PropertySize(std::string_view name, std::string_view value);

// IoT Hub's message size, which kMaxD2cMessageBytes limits: the body plus
// PropertySize of every property. The one definition: SendEvent refuses
// what is over it, the consumer dead-letters what is over it, routing
// enrichments are checked against it.
[[nodiscard]] std::size_t MessageSize(const Event& event);

// MessageSize with `extra` application properties (routing enrichments, which
// replace a property of the same name) added.
[[nodiscard]] std::size_t MessageSize(
    const Event& event, const std::vector<std::pair<std::string, std::string>>& extra);

// Years 1970 to 2199: times every reader of the store can represent.
[[nodiscard]] bool IsStorableTime(TimePoint t);

// Whether `text` is valid UTF-8 without NUL bytes (what PostgreSQL text and
// jsonb accept).
[[nodiscard]] bool IsStorableText(std::string_view text);

}  // namespace ferry::d2c
