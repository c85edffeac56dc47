#include "core/d2c/record.h"

#include <limits>

#include <gtest/gtest.h>

namespace ferry::d2c {
namespace {

const TimePoint kNow = *ParseTime("2026-11-26T12:00:00Z");

KafkaRecord Record(std::vector<KafkaHeader> headers, std::optional<std::string> key = "dev-1") {
  KafkaRecord r;
  r.topic = "ferry.d2c";
  r.partition = 3;
  r.offset = 42;
  r.key = std::move(key);
  r.value = "{\"t\":1}";
  r.headers = std::move(headers);
  r.timestamp_ms = 1795600000000;
  return r;
}

TEST(Record, IotHubHeadersMapOntoSystemAndApplicationProperties) {
  const Decoded d = Decode(Record({{"message-id", "m1"},
                                   {"correlation-id", "c1"},
                                   {"content-type", "application/json"},
                                   {"content-encoding", "utf-8"},
                                   {"iothub-connection-device-id", "dev-1"},
                                   {"iothub-enqueuedtime", "2026-11-26T10:00:00.250Z"},
                                   {"iothub-creation-time-utc", "2026-11-26T09:59:59Z"},
                                   {"temperature", "21.5"}}),
                           kNow);
  ASSERT_TRUE(d.event) << d.dead_letter->detail;
  const Event& e = *d.event;
  EXPECT_EQ(e.device_id, "dev-1");
  EXPECT_EQ(e.message_id, "m1");
  EXPECT_EQ(e.correlation_id, "c1");
  EXPECT_EQ(e.content_type, "application/json");
  EXPECT_EQ(e.content_encoding, "utf-8");
  EXPECT_EQ(FormatTime(e.enqueued_time), "2026-11-26T10:00:00.250Z");
  EXPECT_EQ(FormatTime(*e.creation_time), "2026-11-26T09:59:59.000Z");
  EXPECT_EQ(e.application_properties.at("temperature"), "21.5");
  EXPECT_EQ(e.application_properties.count("message-id"), 0u);
  EXPECT_EQ(e.system_properties.at("message-id"), "m1");
  EXPECT_EQ(e.body, "{\"t\":1}");
}

TEST(Record, WithoutEnqueuedTimeTheRecordTimestampApplies) {
  const Decoded d = Decode(Record({}), kNow);
  ASSERT_TRUE(d.event);
  EXPECT_EQ(ToUnixMicros(d.event->enqueued_time), 1795600000000000);
  EXPECT_EQ(d.event->system_properties.at("iothub-connection-device-id"), "dev-1");
  EXPECT_EQ(d.event->system_properties.at("iothub-enqueuedtime"),
            FormatTime(d.event->enqueued_time));
}

TEST(Record, TheKeyIsTheDeviceAndMustAgreeWithTheHeader) {
  EXPECT_EQ(Decode(Record({{"iothub-connection-device-id", "dev-2"}}), kNow).dead_letter->reason,
            DeadLetterReason::kDeviceMismatch);
  const Decoded header_only =
      Decode(Record({{"iothub-connection-device-id", "dev-9"}}, std::nullopt), kNow);
  ASSERT_TRUE(header_only.event);
  EXPECT_EQ(header_only.event->device_id, "dev-9");
  EXPECT_EQ(Decode(Record({}, std::nullopt), kNow).dead_letter->reason,
            DeadLetterReason::kMissingDevice);
  EXPECT_EQ(Decode(Record({}, std::string(129, 'x')), kNow).dead_letter->reason,
            DeadLetterReason::kInvalidDeviceId);
}

TEST(Record, HonoHeadersAreAcceptedAndExpireByTtl) {
  const std::string created = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(kNow.time_since_epoch()).count() -
      5000);
  const Decoded fresh = Decode(Record({{"device_id", "dev-1"},
                                       {"content-type", "text/plain"},
                                       {"creation-time", created},
                                       {"ttl", "60000"},
                                       {"qos", "1"}}),
                               kNow);
  ASSERT_TRUE(fresh.event);
  EXPECT_EQ(fresh.event->content_type, "text/plain");
  EXPECT_EQ(fresh.event->creation_time, *ParseTime(created));
  EXPECT_EQ(fresh.event->application_properties.count("qos"), 0u);
  EXPECT_EQ(fresh.event->application_properties.count("device_id"), 0u);

  const Decoded expired =
      Decode(Record({{"device_id", "dev-1"}, {"creation-time", created}, {"ttl", "1000"}}), kNow);
  EXPECT_EQ(expired.dead_letter->reason, DeadLetterReason::kExpired);
  EXPECT_EQ(Decode(Record({{"device_id", "dev-2"}}), kNow).dead_letter->reason,
            DeadLetterReason::kDeviceMismatch);
}

// Found by reasoning over fuzz/kafka_record_fuzz.cc: creation-time plus a
// ttl near int64's maximum overflowed (undefined behaviour, caught by UBSan
// in the sanitizer build). Such a message never expires.
TEST(Record, HonoTtlTooLargeToAddNeverExpires) {
  const Decoded d =
      Decode(Record({{"device_id", "dev-1"},
                     {"creation-time", "1795600000000"},
                     {"ttl", std::to_string(std::numeric_limits<std::int64_t>::max())}}),
             kNow);
  ASSERT_TRUE(d.event);
  const Decoded past =
      Decode(Record({{"device_id", "dev-1"},
                     {"creation-time", "1000"},
                     {"ttl", std::to_string(std::numeric_limits<std::int64_t>::min())}}),
             kNow);
  ASSERT_TRUE(past.dead_letter);
  EXPECT_EQ(past.dead_letter->reason, DeadLetterReason::kExpired);
}

TEST(Record, UndecodableHeadersAreDeadLettered) {
  EXPECT_EQ(Decode(Record({{"note", std::string("\xff\xfe")}}), kNow).dead_letter->reason,
            DeadLetterReason::kInvalidHeader);
  EXPECT_EQ(Decode(Record({{"note", std::string("a\0b", 3)}}), kNow).dead_letter->reason,
            DeadLetterReason::kInvalidHeader);
  EXPECT_EQ(Decode(Record({{std::string("n\xc0\x80"), "v"}}), kNow).dead_letter->reason,
            DeadLetterReason::kInvalidHeader);  // overlong NUL
  EXPECT_EQ(Decode(Record({{"iothub-enqueuedtime", "yesterday"}}), kNow).dead_letter->reason,
            DeadLetterReason::kInvalidTimestamp);
  EXPECT_TRUE(Decode(Record({{"note", std::string("caf\xc3\xa9 \xf0\x9f\x9a\x80")}}), kNow).event);
}

TEST(Record, SizeCountsBodyAndPropertiesAsIotHubDoes) {
  // Application properties count name and value, system properties their
  // value, the hub's own stamps nothing.
  KafkaRecord r = Record({{"k", "vv"},
                          {"message-id", "m-1"},
                          {"iothub-connection-device-id", "dev-1"},
                          {"iothub-enqueuedtime", "2026-11-26T10:00:00.250Z"},
                          {"iothub-message-source", "Telemetry"}});
  r.value = std::string(kMaxD2cMessageBytes - 6, 'x');
  const Decoded ok = Decode(r, kNow);
  ASSERT_TRUE(ok.event) << ok.dead_letter->detail;
  EXPECT_EQ(MessageSize(*ok.event), kMaxD2cMessageBytes);  // exactly 256 KB lands
  r.value->push_back('x');
  const Decoded over = Decode(r, kNow);
  ASSERT_TRUE(over.dead_letter);
  EXPECT_EQ(over.dead_letter->reason, DeadLetterReason::kTooLarge);
  EXPECT_NE(over.dead_letter->detail.find("262145 bytes"), std::string::npos)
      << over.dead_letter->detail;
  // Enrichments are application properties; one replacing a property counts once.
  EXPECT_EQ(MessageSize(*ok.event, {{"k", "v"}}), kMaxD2cMessageBytes - 1);
  EXPECT_EQ(MessageSize(*ok.event, {{"k", "v"}, {"hub", "h"}}), kMaxD2cMessageBytes + 3);
}

TEST(Record, IotHubsSystemPropertiesByNameNotByPrefix) {
  EXPECT_TRUE(IsSystemProperty("message-id"));
  EXPECT_TRUE(IsSystemProperty("iothub-enqueuedtime"));
  EXPECT_TRUE(IsSystemProperty("iothub-connection-auth-method"));
  EXPECT_TRUE(IsSystemProperty("x-opt-offset"));
  // Lifecycle notifications carry it as an application property, so IoT
  // Hub's own query `iothub-message-schema = '...'` routes them.
  EXPECT_FALSE(IsSystemProperty("iothub-message-schema"));
  EXPECT_FALSE(IsSystemProperty("opType"));
  const Decoded d =
      Decode(Record({{"iothub-message-schema", "deviceLifecycleNotification"}}), kNow);
  ASSERT_TRUE(d.event);
  EXPECT_EQ(d.event->application_properties.at("iothub-message-schema"),
            "deviceLifecycleNotification");
  EXPECT_FALSE(d.event->system_properties.contains("iothub-message-schema"));
}

TEST(Record, TimesParseInTheUsualForms) {
  EXPECT_EQ(FormatTime(*ParseTime("2026-11-26T10:00:00Z")), "2026-11-26T10:00:00.000Z");
  EXPECT_EQ(FormatTime(*ParseTime("2026-11-26T12:00:00.123456+02:00")), "2026-11-26T10:00:00.123Z");
  EXPECT_EQ(FormatTime(*ParseTime("1795600000000")),
            FormatTime(TimePoint(std::chrono::milliseconds(1795600000000))));
  EXPECT_FALSE(ParseTime("2026-02-30T00:00:00Z"));
  EXPECT_FALSE(ParseTime("2026-11-26 10:00"));
  EXPECT_FALSE(ParseTime("2026-11-26T10:00:00"));
}

TEST(Record, StorableTextIsUtf8WithoutNul) {
  EXPECT_TRUE(IsStorableText("plain"));
  EXPECT_TRUE(IsStorableText("\xe2\x82\xac"));
  EXPECT_FALSE(IsStorableText(std::string("\0", 1)));
  EXPECT_FALSE(IsStorableText("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsStorableText("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsStorableText("\xe2\x82"));          // truncated
}

TEST(Batching, CutsAtCountBytesOrLinger) {
  const BatchLimits limits{3, 1000};
  using std::chrono::milliseconds;
  EXPECT_FALSE(BatchDue(0, 0, milliseconds(999), milliseconds(50), limits, true));
  EXPECT_FALSE(BatchDue(2, 100, milliseconds(10), milliseconds(50), limits, false));
  EXPECT_TRUE(BatchDue(3, 100, milliseconds(10), milliseconds(50), limits, false));
  EXPECT_TRUE(BatchDue(1, 1000, milliseconds(10), milliseconds(50), limits, false));
  EXPECT_TRUE(BatchDue(1, 10, milliseconds(50), milliseconds(50), limits, false));
  EXPECT_TRUE(BatchDue(1, 10, milliseconds(0), milliseconds(50), limits, true));

  std::deque<KafkaRecord> buffer;
  for (int i = 0; i < 7; ++i) {
    KafkaRecord r;
    r.offset = i;
    r.value = std::string(200, 'x');  // 264 bytes each with the overhead
    buffer.push_back(r);
  }
  std::vector<KafkaRecord> batch;
  EXPECT_EQ(TakeBatch(buffer, limits, batch), 3u * 264);  // count-bound
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch.front().offset, 0);
  batch.clear();
  EXPECT_EQ(TakeBatch(buffer, BatchLimits{100, 600}, batch), 2u * 264);  // byte-bound
  EXPECT_EQ(batch.back().offset, 4);
  batch.clear();
  KafkaRecord huge;
  huge.offset = 99;
  huge.value = std::string(5000, 'x');
  buffer.push_front(huge);
  EXPECT_EQ(TakeBatch(buffer, limits, batch), huge.size_bytes());  // alone, over the limit
  EXPECT_EQ(batch.size(), 1u);
  EXPECT_EQ(buffer.size(), 2u);
}

}  // namespace
}  // namespace ferry::d2c
