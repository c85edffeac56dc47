#pragma once

#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>

#include "core/clock.h"

namespace ferry::rpc {

// TimePoint <-> google.protobuf.Timestamp, to the microsecond.
[[nodiscard]] inline google::protobuf::Timestamp ToProtoTime(TimePoint t) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(ToUnixMicros(t));
}
[[nodiscard]] inline TimePoint FromProtoTime(const google::protobuf::Timestamp& t) {
  return FromUnixMicros(google::protobuf::util::TimeUtil::TimestampToMicroseconds(t));
}

}  // namespace ferry::rpc
