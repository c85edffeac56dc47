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
[[nodiscard]] inline TimePoint FromUnixMicros(std::int64_t us) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds(us)));
}

}  // namespace ferry
