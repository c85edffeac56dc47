#pragma once

#include <chrono>
#include <cstdint>

namespace ferry {

using TimePoint = std::chrono::system_clock::time_point;

// The time every domain decision uses (locks, expiry, status times). SQL
// now() decides nothing; tests pass a fake clock.
// Thread-safety: implementations must be safe to call from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] TimePoint Now() const override { return std::chrono::system_clock::now(); }
};

[[nodiscard]] inline std::int64_t ToUnixMicros(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
// Saturates: TimePoint counts nanoseconds (years 1677 to 2262), so a time
// outside that range (a protobuf Timestamp may say year 1 or 9999) becomes
// the nearest end instead of overflowing.
[[nodiscard]] inline TimePoint FromUnixMicros(std::int64_t us) {
  using Micros = std::chrono::microseconds;
  constexpr auto kMax = std::chrono::duration_cast<Micros>(TimePoint::duration::max()).count();
  constexpr auto kMin = std::chrono::duration_cast<Micros>(TimePoint::duration::min()).count();
  if (us >= kMax) return TimePoint::max();
  if (us <= kMin) return TimePoint::min();
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(Micros(us)));
}

}  // namespace ferry
