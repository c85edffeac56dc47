#pragma once

#include <chrono>
#include <string_view>

#include <fmt/format.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>

#include "core/clock.h"
#include "core/error.h"

namespace ferry::rpc {

// The one way times and durations cross the API. protobuf's own conversions
// (TimeUtil::TimestampToMicroseconds, DurationToMicroseconds) multiply
// without a range check, so 2^58 s wraps around to a small value; these
// refuse anything outside the type's valid range (a Timestamp in the years 1
// to 9999, a Duration within 10,000 years, nanos in range and of the
// seconds' sign) with ArgumentInvalid, naming `field`, before any
// arithmetic. Inside those ranges the microseconds fit in 64 bits.

[[nodiscard]] inline google::protobuf::Timestamp ToProtoTime(TimePoint t) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(ToUnixMicros(t));
}

// To the microsecond; a time past what TimePoint holds (the year 2262)
// saturates there (FromUnixMicros).
[[nodiscard]] inline TimePoint FromProtoTime(const google::protobuf::Timestamp& t,
                                             std::string_view field = "time") {
  using google::protobuf::util::TimeUtil;
  if (t.seconds() < TimeUtil::kTimestampMinSeconds ||
      t.seconds() > TimeUtil::kTimestampMaxSeconds || t.nanos() < 0 || t.nanos() > 999'999'999) {
    throw Error(
        Reason::kArgumentInvalid,
        fmt::format("{} is not a valid timestamp (years 1 to 9999, nanos 0 to 999999999)", field));
  }
  return FromUnixMicros(t.seconds() * 1'000'000 + t.nanos() / 1000);
}

[[nodiscard]] inline std::chrono::microseconds FromProtoDuration(
    const google::protobuf::Duration& d, std::string_view field = "duration") {
  using google::protobuf::util::TimeUtil;
  const bool signs_agree =
      (d.seconds() >= 0 && d.nanos() >= 0) || (d.seconds() <= 0 && d.nanos() <= 0);
  if (d.seconds() < TimeUtil::kDurationMinSeconds || d.seconds() > TimeUtil::kDurationMaxSeconds ||
      d.nanos() < -999'999'999 || d.nanos() > 999'999'999 || !signs_agree) {
    throw Error(Reason::kArgumentInvalid, fmt::format("{} is not a valid duration", field));
  }
  return std::chrono::microseconds(d.seconds() * 1'000'000 + d.nanos() / 1000);
}

}  // namespace ferry::rpc
