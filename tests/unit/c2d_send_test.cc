#include <string>

#include <gtest/gtest.h>

#include "core/c2d/send.h"
#include "core/error.h"
#include "core/time_text.h"

namespace ferry::c2d {
namespace {

const TimePoint kNow = *ParseTime("2026-11-26T12:00:00Z");

SendRequest Minimal() {
  SendRequest r;
  r.device_id = "dev-1";
  r.body = "hello";
  return r;
}

OutgoingMessage Validate(const SendRequest& r) {
  return ValidateSend(r, kNow, std::chrono::hours(1), [] { return std::string("generated"); });
}

Reason RefusedWith(const SendRequest& r) {
  try {
    (void)Validate(r);
  } catch (const Error& e) {
    return e.reason();
  }
  ADD_FAILURE() << "accepted";
  return Reason::kServerError;
}

TEST(C2dSend, AcceptsAMinimalMessageWithTheDefaultTtlAndAGeneratedId) {
  const OutgoingMessage m = Validate(Minimal());
  EXPECT_EQ(m.device_id, "dev-1");
  EXPECT_EQ(m.message_id, "generated");
  EXPECT_EQ(m.expires_at, kNow + std::chrono::hours(1));
  EXPECT_FALSE(m.correlation_id);
  EXPECT_EQ(m.body, "hello");
}

TEST(C2dSend, ChecksIdsAndPropertyCharacters) {
  SendRequest r = Minimal();
  r.message_id = "m:1;x";
  r.properties = {{"level", "high"}};
  EXPECT_EQ(Validate(r).message_id, "m:1;x");
  r.device_id = "dev;1";  // ';' is a message id character, not a device id one
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);
  r = Minimal();
  r.correlation_id = std::string(129, 'c');
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);
  r = Minimal();
  r.properties = {{"sp ace", "v"}};
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);
  r.properties = {{"", "v"}};
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);
  r.properties = {{"k", "v"}, {"k", "w"}};
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);
}

TEST(C2dSend, AtMost128PropertiesAnd64KbAsIotHubCounts) {
  SendRequest r = Minimal();
  for (int i = 0; i < 128; ++i) r.properties.emplace_back("p" + std::to_string(i), "v");
  EXPECT_EQ(Validate(r).properties.size(), 128u);
  r.properties.emplace_back("p128", "v");
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);

  r = Minimal();
  r.message_id = "m";
  r.body = std::string(64 * 1024 - 1 - 4, 'b');  // + message id + "none"
  EXPECT_NO_THROW((void)Validate(r));
  r.body.push_back('b');
  EXPECT_EQ(RefusedWith(r), Reason::kMessageTooLarge);
}

TEST(C2dSend, ExpiryIsOneMinuteToTwoDaysAway) {
  SendRequest r = Minimal();
  r.ttl = std::chrono::seconds(60);
  EXPECT_EQ(Validate(r).expires_at, kNow + std::chrono::seconds(60));
  r.ttl = std::chrono::seconds(59);
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);
  r.ttl.reset();
  r.expiry_time = kNow + std::chrono::hours(48);
  EXPECT_EQ(Validate(r).expires_at, kNow + std::chrono::hours(48));
  r.ttl = std::chrono::seconds(60);
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);  // not both
}

// Found by fuzz/c2d_send_fuzz.cc (fuzz/regressions/c2d_send/): an
// expiry_time in year 1 or 9999, which protobuf Timestamps allow, overflowed
// the nanosecond TimePoint on conversion (undefined behaviour). Conversion
// now saturates and such a send is refused like any out-of-range expiry.
TEST(C2dSend, ExpiryFarOutsideTimePointsRangeIsRefusedNotOverflowed) {
  EXPECT_EQ(FromUnixMicros(-62135596800000000), TimePoint::min());
  EXPECT_EQ(FromUnixMicros(253402300799000000), TimePoint::max());
  EXPECT_EQ(ToUnixMicros(FromUnixMicros(1795000000123456)), 1795000000123456);
  SendRequest r = Minimal();
  r.expiry_time = FromUnixMicros(-62135596800000000);
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);
  r.expiry_time = FromUnixMicros(253402300799000000);
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);
  r.expiry_time.reset();
  r.ttl = std::chrono::microseconds::max();
  EXPECT_EQ(RefusedWith(r), Reason::kArgumentInvalid);
}

}  // namespace
}  // namespace ferry::c2d
