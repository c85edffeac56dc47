#pragma once

#include <chrono>
#include <mutex>

namespace ferry {

// A token bucket: `rate` tokens a second, holding at most `burst`. A rate of
// 0 lets everything through. Thread-safe.
class TokenBucket final {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(double rate, double burst, Clock::time_point now = Clock::now());

  // Takes `n` tokens if there are that many; false (taking none) otherwise.
  bool TryTake(double n = 1, Clock::time_point now = Clock::now());

  [[nodiscard]] double rate() const { return rate_; }

 private:
  const double rate_;
  const double burst_;
  std::mutex mutex_;
  double tokens_;
  Clock::time_point last_;
};

}  // namespace ferry
