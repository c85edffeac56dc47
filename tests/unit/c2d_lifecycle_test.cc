// The lifecycle table of docs/c2d.md, row by row, on a fake
// clock.
#include <gtest/gtest.h>

#include "core/c2d/lifecycle.h"
#include "tests/support/fake_clock.h"

namespace ferry::c2d {
namespace {

using namespace std::chrono_literals;

class LifecycleTest : public ::testing::Test {
 protected:
  Message Fresh() {
    Message m;
    m.expires_at = clock_.Now() + 1h;
    return m;
  }
  testing::FakeClock clock_{FromUnixMicros(1'800'000'000'000'000)};
  Limits limits_{60s, 10};
};

TEST_F(LifecycleTest, ASendIsEnqueuedWithCountZeroAndDeliverable) {
  const Message m = Fresh();
  EXPECT_EQ(m.state, State::kEnqueued);
  EXPECT_EQ(m.delivery_count, 0);
  EXPECT_TRUE(Pending(m));
  EXPECT_TRUE(Deliverable(m, clock_.Now()));
}

TEST_F(LifecycleTest, ReceiveLocksWithoutCounting) {
  Message m = Fresh();
  EXPECT_EQ(Lock(m, clock_.Now(), limits_, "t1").verdict, Verdict::kDone);
  EXPECT_EQ(m.state, State::kInvisible);
  EXPECT_EQ(m.delivery_count, 0);
  EXPECT_EQ(*m.lock_until, clock_.Now() + 60s);
  EXPECT_FALSE(Deliverable(m, clock_.Now() + 59s));
  EXPECT_EQ(Lock(m, clock_.Now(), limits_, "t2").verdict, Verdict::kNotAllowed);  // locked once
}

TEST_F(LifecycleTest, CompleteCompletesAndARepeatWithTheSameTokenIsOk) {
  Message m = Fresh();
  (void)Lock(m, clock_.Now(), limits_, "t1");
  EXPECT_EQ(Complete(m, "t1", clock_.Now() + 10s).verdict, Verdict::kDone);
  EXPECT_EQ(m.state, State::kCompleted);
  EXPECT_EQ(m.outcome, Outcome::kSuccess);
  EXPECT_FALSE(Pending(m));
  EXPECT_EQ(Complete(m, "t1", clock_.Now() + 20s).verdict, Verdict::kAlreadyDone);
  EXPECT_EQ(Complete(m, "other", clock_.Now() + 20s).verdict, Verdict::kLockLost);
}

TEST_F(LifecycleTest, RejectDeadLetters) {
  Message m = Fresh();
  (void)Lock(m, clock_.Now(), limits_, "t1");
  EXPECT_EQ(Reject(m, "t1", clock_.Now()).verdict, Verdict::kDone);
  EXPECT_EQ(m.state, State::kDeadLettered);
  EXPECT_EQ(m.outcome, Outcome::kRejected);
  EXPECT_EQ(Reject(m, "t1", clock_.Now()).verdict, Verdict::kAlreadyDone);
}

TEST_F(LifecycleTest, AbandonReEnqueuesAndCounts) {
  Message m = Fresh();
  (void)Lock(m, clock_.Now(), limits_, "t1");
  const Result r = Abandon(m, "t1", clock_.Now(), limits_);
  EXPECT_EQ(r.verdict, Verdict::kDone);
  EXPECT_TRUE(r.deliverable_again);
  EXPECT_EQ(m.state, State::kEnqueued);
  EXPECT_EQ(m.delivery_count, 1);
  EXPECT_EQ(Abandon(m, "t1", clock_.Now(), limits_).verdict,
            Verdict::kLockLost);  // the lock is gone
}

TEST_F(LifecycleTest, TheAbandonThatReachesTheMaximumDeadLetters) {
  Message m = Fresh();
  for (int i = 1; i <= 9; ++i) {
    (void)Lock(m, clock_.Now(), limits_, "t" + std::to_string(i));
    EXPECT_EQ(Abandon(m, "t" + std::to_string(i), clock_.Now(), limits_).verdict, Verdict::kDone);
    EXPECT_EQ(m.state, State::kEnqueued);
  }
  (void)Lock(m, clock_.Now(), limits_, "t10");
  const Result r = Abandon(m, "t10", clock_.Now(), limits_);
  EXPECT_EQ(r.verdict, Verdict::kDone);
  EXPECT_FALSE(r.deliverable_again);
  EXPECT_EQ(m.state, State::kDeadLettered);
  EXPECT_EQ(m.outcome, Outcome::kDeliveryCountExceeded);
  EXPECT_EQ(m.delivery_count, 10);
}

TEST_F(LifecycleTest, FifteenLockExpiriesLeaveTheCountAtZeroAndTheMessageDeliverable) {
  Message m = Fresh();
  for (int i = 0; i < 15; ++i) {
    EXPECT_EQ(Lock(m, clock_.Now(), limits_, "t" + std::to_string(i)).verdict, Verdict::kDone);
    clock_.Advance(61s);
    EXPECT_TRUE(Deliverable(m, clock_.Now()));
    // Settling with the lapsed lock fails.
    EXPECT_EQ(Complete(m, "t" + std::to_string(i), clock_.Now()).verdict, Verdict::kLockLost);
  }
  EXPECT_EQ(m.delivery_count, 0);
  EXPECT_EQ(ReleaseLapsedLock(m, clock_.Now()).verdict, Verdict::kDone);
  EXPECT_EQ(m.state, State::kEnqueued);
  EXPECT_EQ(m.delivery_count, 0);
}

TEST_F(LifecycleTest, ALateCompleteIsLockLost) {
  Message m = Fresh();
  (void)Lock(m, clock_.Now(), limits_, "t1");
  EXPECT_EQ(Complete(m, "t1", clock_.Now() + 60s).verdict,
            Verdict::kLockLost);  // the deadline itself is late
  EXPECT_EQ(m.state, State::kInvisible);
}

TEST_F(LifecycleTest, ExpiryDeadLettersAnyNonTerminalStateAndIsNeverDelivered) {
  for (const bool locked : {false, true}) {
    Message m = Fresh();
    if (locked) (void)Lock(m, clock_.Now(), limits_, "t1");
    EXPECT_FALSE(Deliverable(m, m.expires_at));
    Message early = m;
    EXPECT_EQ(Expire(early, m.expires_at - 1s).verdict, Verdict::kNotAllowed);
    EXPECT_EQ(Expire(m, m.expires_at).verdict, Verdict::kDone);
    EXPECT_EQ(m.state, State::kDeadLettered);
    EXPECT_EQ(m.outcome, Outcome::kExpired);
    EXPECT_EQ(Lock(m, m.expires_at, limits_, "t2").verdict, Verdict::kNotAllowed);
  }
}

TEST_F(LifecycleTest, PurgeRemovesPendingMessagesOnly) {
  Message m = Fresh();
  (void)Lock(m, clock_.Now(), limits_, "t1");
  EXPECT_EQ(Purge(m, clock_.Now()).verdict, Verdict::kDone);
  EXPECT_EQ(m.state, State::kPurged);
  EXPECT_EQ(m.outcome, Outcome::kPurged);
  EXPECT_EQ(Complete(m, "t1", clock_.Now()).verdict, Verdict::kLockLost);
  Message done = Fresh();
  (void)Lock(done, clock_.Now(), limits_, "t1");
  (void)Complete(done, "t1", clock_.Now());
  EXPECT_EQ(Purge(done, clock_.Now()).verdict, Verdict::kNotAllowed);
}

TEST(Feedback, AckDecidesWhichOutcomesAreReported) {
  for (const Outcome o : {Outcome::kSuccess, Outcome::kExpired, Outcome::kDeliveryCountExceeded,
                          Outcome::kRejected, Outcome::kPurged}) {
    EXPECT_FALSE(WantsFeedback(Ack::kNone, o));
    EXPECT_EQ(WantsFeedback(Ack::kPositive, o), o == Outcome::kSuccess);
    EXPECT_EQ(WantsFeedback(Ack::kNegative, o), o != Outcome::kSuccess);
    EXPECT_TRUE(WantsFeedback(Ack::kFull, o));
    EXPECT_EQ(OutcomeFromName(OutcomeName(o)), o);
  }
  EXPECT_EQ(AckFromName("full"), Ack::kFull);
  EXPECT_FALSE(AckFromName("FULL").has_value());
  EXPECT_EQ(StateFromName("Invisible"), State::kInvisible);
}

}  // namespace
}  // namespace ferry::c2d
