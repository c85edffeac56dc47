// What the API takes in: SendEvent's record against the consumer's
// decoding (what the device API accepts, the consumer lands: one size rule,
// d2c::MessageSize, on both sides); the one check for NUL in text fields;
// the one conversion of times and durations.
#include <gtest/gtest.h>

#include "core/d2c/record.h"
#include "core/error.h"
#include "core/time_text.h"
#include "ferry/v1/c2d.pb.h"
#include "ferry/v1/registry.pb.h"
#include "services/device/device_messaging_service.h"
#include "services/rpc/proto_time.h"
#include "services/rpc/runtime.h"

namespace ferry::device {
namespace {

const TimePoint kNow = *ParseTime("2026-11-26T12:00:00.123456Z");

rpc::Caller Device() {
  rpc::Caller c;
  c.kind = rpc::Caller::Kind::kDevice;
  c.principal = "thermostat-7";
  c.device_id = "thermostat-7";
  c.generation_id = "638999999999999999";
  return c;
}

// The record as the consumer fetches it.
d2c::KafkaRecord Fetched(const kafka::OutgoingRecord& out) {
  d2c::KafkaRecord r;
  r.topic = out.topic;
  r.key = out.key;
  r.value = out.value;
  r.timestamp_ms = out.timestamp_ms;
  for (const auto& [name, value] : out.headers) r.headers.push_back({name, value});
  return r;
}

v1::D2cMessage Message(std::size_t body_bytes) {
  v1::D2cMessage m;
  m.set_message_id("m-1");
  m.set_correlation_id("c-1");
  m.set_content_type("application/json");
  m.set_content_encoding("utf-8");
  (*m.mutable_properties())["alert"] = "false";
  (*m.mutable_properties())["site"] = "plant-4";
  m.set_body(std::string(body_bytes, 'x'));
  return m;
}

// What the properties of Message() add: system property values, and
// application property names and values.
constexpr std::size_t kPropertyBytes = 3 + 3 + 16 + 5 + (5 + 5) + (4 + 7);

TEST(DeviceMessaging, WhatSendEventAcceptsTheConsumerLandsUpToExactly256KB) {
  for (const std::size_t body : {std::size_t{262080}, d2c::kMaxD2cMessageBytes - kPropertyBytes - 1,
                                 d2c::kMaxD2cMessageBytes - kPropertyBytes}) {
    std::size_t size = 0;
    const kafka::OutgoingRecord out =
        BuildRecord("ferry.d2c", Device(), Message(body), kNow, &size);
    EXPECT_EQ(size, body + kPropertyBytes);
    const d2c::Decoded d = d2c::Decode(Fetched(out), kNow);
    ASSERT_TRUE(d.event) << "body " << body << ": " << d.dead_letter->detail;
    EXPECT_EQ(d2c::MessageSize(*d.event), size);
  }
}

TEST(DeviceMessaging, OneByteOver256KBIsRefusedBeforeKafka) {
  try {
    (void)BuildRecord("ferry.d2c", Device(), Message(d2c::kMaxD2cMessageBytes - kPropertyBytes + 1),
                      kNow);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), Reason::kMessageTooLarge);
    EXPECT_NE(std::string(e.what()).find("262145 bytes"), std::string::npos) << e.what();
  }
}

TEST(DeviceMessaging, DevicesCannotUseSystemOrHubPropertyNames) {
  for (const char* name : {"message-id", "iothub-connection-device-id", "iothub-message-schema",
                           "iothub-enqueuedtime", "x-opt-offset", "dt-subject"}) {
    v1::D2cMessage m = Message(1);
    (*m.mutable_properties())[name] = "spoof";
    EXPECT_THROW((void)BuildRecord("ferry.d2c", Device(), m, kNow), Error) << name;
  }
}

TEST(ApiInput, ANulInAnyTextFieldIsFoundWithItsPath) {
  v1::UpdateDeviceRequest update;
  update.mutable_device()->set_device_id("d");
  update.mutable_device()->set_status_reason("fine");
  EXPECT_EQ(rpc::FieldWithNul(update), std::nullopt);
  update.mutable_device()->set_status_reason(std::string("a\0b", 3));
  EXPECT_EQ(rpc::FieldWithNul(update), "device.status_reason");

  v1::SendC2dRequest send;
  send.set_device_id("d");
  send.mutable_message()->set_body(std::string("bytes may \0 hold anything", 26));
  EXPECT_EQ(rpc::FieldWithNul(send), std::nullopt);
  (*send.mutable_message()->mutable_properties())["k"] = std::string("v\0", 2);
  EXPECT_EQ(rpc::FieldWithNul(send), "message.properties[0].value");
  send.mutable_message()->mutable_properties()->clear();
  (*send.mutable_message()->mutable_properties())[std::string("k\0", 2)] = "v";
  EXPECT_EQ(rpc::FieldWithNul(send), "message.properties[0].key");
}

TEST(ApiInput, TimesAndDurationsOutOfRangeAreRefusedNotWrapped) {
  google::protobuf::Timestamp t;
  t.set_seconds(1'790'000'000);
  t.set_nanos(123'456'789);
  EXPECT_EQ(ToUnixMicros(rpc::FromProtoTime(t)), 1'790'000'000'123'456);
  for (const auto& [seconds, nanos] : std::vector<std::pair<std::int64_t, std::int32_t>>{
           {(std::int64_t{1} << 58) + 3600, 0},  // protobuf's conversion wraps it to 3600 s
           {253402300800, 0},                    // 10000-01-01
           {-62135596801, 0},                    // before the year 1
           {0, -1},
           {0, 1'000'000'000}}) {
    t.set_seconds(seconds);
    t.set_nanos(nanos);
    try {
      (void)rpc::FromProtoTime(t, "expiry_time");
      ADD_FAILURE() << seconds << "s " << nanos << "ns accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.reason(), Reason::kArgumentInvalid);
      EXPECT_NE(std::string(e.what()).find("expiry_time"), std::string::npos) << e.what();
    }
  }
  // Past what TimePoint holds but valid: saturates, never wraps.
  t.set_seconds(253402300799);
  t.set_nanos(0);
  EXPECT_EQ(rpc::FromProtoTime(t), TimePoint::max());

  google::protobuf::Duration d;
  d.set_seconds(120);
  d.set_nanos(500'000'000);
  EXPECT_EQ(rpc::FromProtoDuration(d), std::chrono::microseconds(120'500'000));
  for (const auto& [seconds, nanos] :
       std::vector<std::pair<std::int64_t, std::int32_t>>{{(std::int64_t{1} << 58) + 2, 0},
                                                          {315576000001, 0},
                                                          {1, -1},
                                                          {-1, 1},
                                                          {0, 1'000'000'000}}) {
    d.set_seconds(seconds);
    d.set_nanos(nanos);
    EXPECT_THROW((void)rpc::FromProtoDuration(d, "wait"), Error)
        << seconds << "s " << nanos << "ns";
  }
}

TEST(DeviceMessaging, CreationTimesTheStoreCannotHoldAreRefusedNotDeadLettered) {
  v1::D2cMessage m = Message(1);
  m.mutable_creation_time()->set_seconds(-1);  // 1969
  EXPECT_THROW((void)BuildRecord("ferry.d2c", Device(), m, kNow), Error);
  m.mutable_creation_time()->set_seconds(std::int64_t{8'000'000'000});  // 2223
  EXPECT_THROW((void)BuildRecord("ferry.d2c", Device(), m, kNow), Error);
  m.mutable_creation_time()->set_seconds(std::int64_t{1} << 58);
  EXPECT_THROW((void)BuildRecord("ferry.d2c", Device(), m, kNow), Error);
  m.mutable_creation_time()->set_seconds(1'790'000'000);
  const d2c::Decoded d = d2c::Decode(Fetched(BuildRecord("ferry.d2c", Device(), m, kNow)), kNow);
  ASSERT_TRUE(d.event);
  EXPECT_EQ(d.event->creation_time, FromUnixMicros(1'790'000'000'000'000));
}

}  // namespace
}  // namespace ferry::device
