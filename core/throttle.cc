#include "core/throttle.h"

#include <algorithm>

namespace ferry {

TokenBucket::TokenBucket(double rate, double burst, Clock::time_point now)
    : rate_(rate), burst_(std::max(burst, 1.0)), tokens_(std::max(burst, 1.0)), last_(now) {}

bool TokenBucket::TryTake(double n, Clock::time_point now) {
  if (rate_ <= 0) return true;
  std::lock_guard lock(mutex_);
  if (now > last_) {
    tokens_ =
        std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    last_ = now;
  }
  if (tokens_ < n) return false;
  tokens_ -= n;
  return true;
}

}  // namespace ferry
