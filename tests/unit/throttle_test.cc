#include "core/throttle.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

using namespace std::chrono_literals;

TEST(TokenBucket, AllowsTheRateWithABurstOfOneSecondAndRefills) {
  const auto t0 = TokenBucket::Clock::time_point{} + 1h;
  TokenBucket b(10, 10, t0);
  int taken = 0;
  for (int i = 0; i < 20; ++i) taken += b.TryTake(1, t0) ? 1 : 0;
  EXPECT_EQ(taken, 10);  // the burst
  EXPECT_FALSE(b.TryTake(1, t0 + 50ms));
  EXPECT_TRUE(b.TryTake(1, t0 + 100ms));  // one token a tenth of a second
  EXPECT_FALSE(b.TryTake(1, t0 + 100ms));
  // Never more than the burst, however long it rested.
  taken = 0;
  for (int i = 0; i < 50; ++i) taken += b.TryTake(1, t0 + 1h) ? 1 : 0;
  EXPECT_EQ(taken, 10);
  // Time going backwards adds nothing.
  EXPECT_FALSE(b.TryTake(1, t0));
}

TEST(TokenBucket, RateZeroIsUnlimited) {
  TokenBucket b(0, 0);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(b.TryTake());
}

}  // namespace
}  // namespace ferry
