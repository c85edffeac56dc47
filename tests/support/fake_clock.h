#pragma once

#include <mutex>

#include "core/clock.h"

namespace ferry::testing {

// A clock that moves only when told. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = FromUnixMicros(1'790'000'000'000'000)) : now_(start) {}
  [[nodiscard]] TimePoint Now() const override {
    std::lock_guard lock(mutex_);
    return now_;
  }
  void Advance(std::chrono::microseconds by) {
    std::lock_guard lock(mutex_);
    now_ += by;
  }

 private:
  mutable std::mutex mutex_;
  TimePoint now_;
};

}  // namespace ferry::testing
