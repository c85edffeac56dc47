// The D2C partition lifecycle (core/d2c/partition.h) event by event, on
// time points passed in: claims and their backoff, batches and their
// retries, fencing, back-pressure, epoch checks and gap checks.
#include <gtest/gtest.h>

#include "core/d2c/partition.h"

namespace ferry::d2c {
namespace {

using namespace std::chrono_literals;
using Kind = PartitionJob::Kind;
using Phase = Partition::Phase;

KafkaRecord Record(std::int32_t p, std::int64_t offset, std::size_t value_bytes = 10) {
  KafkaRecord r;
  r.topic = "t";
  r.partition = p;
  r.offset = offset;
  r.key = "device";
  r.value = std::string(value_bytes, 'x');
  return r;
}

class PartitionsTest : public ::testing::Test {
 protected:
  PartitionsTest() {
    limits_.batch = {/*max_records=*/3, /*max_bytes=*/1 << 20};
    limits_.linger = 50ms;
    limits_.max_buffered_records = 4;
    limits_.max_buffered_bytes = 1 << 20;
    parts_ = Partitions(limits_);
  }

  std::vector<PartitionJob> Due(bool flush = false, bool stopping = false) {
    return parts_.Dispatch(now_, flush, stopping);
  }

  // Assigns `p` and claims it at `checkpoint` (epoch 1).
  std::uint64_t Active(std::int32_t p, std::int64_t checkpoint = 100) {
    parts_.Assign(p, now_);
    const std::uint64_t gen = parts_.Find(p)->generation;
    EXPECT_TRUE(parts_.OnClaimed(p, gen, 1, checkpoint, checkpoint));
    return gen;
  }

  const Partition& Of(std::int32_t p) { return *parts_.Find(p); }

  PartitionLimits limits_;
  SteadyTime now_ = SteadyTime{} + 1h;
  Partitions parts_{limits_};
};

TEST_F(PartitionsTest, AnAssignedPartitionIsClaimedOnceAtATime) {
  parts_.Assign(0, now_);
  EXPECT_EQ(Of(0).phase, Phase::kClaiming);
  auto jobs = Due();
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].kind, Kind::kClaim);
  EXPECT_EQ(jobs[0].partition, 0);
  EXPECT_EQ(jobs[0].generation, Of(0).generation);
  EXPECT_TRUE(Due().empty());                          // the claim is out
  EXPECT_TRUE(Due(false, /*stopping=*/true).empty());  // and none while stopping
}

TEST_F(PartitionsTest, NoClaimIsPostedWhileStopping) {
  parts_.Assign(0, now_);
  EXPECT_TRUE(Due(false, /*stopping=*/true).empty());
}

TEST_F(PartitionsTest, AFailedClaimIsRetriedWithDoublingBackoffUpToAbout25Seconds) {
  parts_.Assign(0, now_);
  const std::uint64_t gen = Of(0).generation;
  std::chrono::milliseconds expected = 100ms;
  for (int failure = 1; failure <= 10; ++failure) {
    ASSERT_EQ(Due().size(), 1U);
    ASSERT_TRUE(parts_.OnClaimFailed(0, gen, now_));
    expected = std::min(expected * 2, std::chrono::milliseconds(100 << 8));
    EXPECT_EQ(Of(0).claim_at, now_ + expected) << "failure " << failure;
    now_ += expected - 1ms;
    EXPECT_TRUE(Due().empty());
    now_ += 1ms;
  }
  ASSERT_EQ(Due().size(), 1U);
  ASSERT_TRUE(parts_.OnClaimed(0, gen, 7, std::nullopt, -2));
  EXPECT_EQ(Of(0).failures, 0);
}

TEST_F(PartitionsTest, AClaimForAnOlderAssignmentIsIgnored) {
  parts_.Assign(0, now_);
  const std::uint64_t old = Of(0).generation;
  parts_.Assign(0, now_);  // assigned again (eager rebalance)
  EXPECT_NE(Of(0).generation, old);
  EXPECT_FALSE(parts_.OnClaimed(0, old, 1, 5, 5));
  EXPECT_FALSE(parts_.OnClaimFailed(0, old, now_));
  EXPECT_EQ(Of(0).phase, Phase::kClaiming);
  EXPECT_FALSE(parts_.OnClaimed(9, 1, 1, 5, 5));  // never assigned
}

TEST_F(PartitionsTest, RecordsBeforeTheClaimOrBelowTheStartAreDropped) {
  parts_.Assign(0, now_);
  EXPECT_EQ(parts_.Append(Record(0, 100), now_), AppendResult::kIgnored);  // claiming
  EXPECT_EQ(parts_.Append(Record(1, 100), now_), AppendResult::kIgnored);  // not assigned
  ASSERT_TRUE(parts_.OnClaimed(0, Of(0).generation, 1, 100, 100));
  EXPECT_EQ(Of(0).expected_offset, 100);
  EXPECT_EQ(parts_.Append(Record(0, 99), now_), AppendResult::kIgnored);  // pre-seek fetch
  EXPECT_EQ(parts_.Append(Record(0, 100), now_), AppendResult::kBuffered);
  EXPECT_EQ(parts_.Append(Record(0, 100), now_), AppendResult::kIgnored);  // a repeat
  EXPECT_EQ(Of(0).buffer.size(), 1U);
  EXPECT_EQ(Of(0).expected_offset, 101);
  EXPECT_EQ(parts_.buffered_bytes(), HeldBytes(Record(0, 100)));
}

TEST_F(PartitionsTest, ALogicalStartAcceptsTheFirstRecordWhateverItsOffset) {
  parts_.Assign(0, now_);
  ASSERT_TRUE(parts_.OnClaimed(0, Of(0).generation, 1, std::nullopt, -2));  // earliest
  EXPECT_FALSE(Of(0).expected_offset);
  EXPECT_EQ(parts_.Append(Record(0, 0), now_), AppendResult::kBuffered);
}

TEST_F(PartitionsTest, ABatchIsDueAtItsRecordLimitOrAfterTheLingerAndOneIsOutAtATime) {
  limits_.max_buffered_records = 100;  // no back-pressure here
  parts_ = Partitions(limits_);
  const std::uint64_t gen = Active(0);
  for (std::int64_t o = 100; o < 104; ++o) parts_.Append(Record(0, o), now_);
  auto jobs = Due();
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].kind, Kind::kLand);
  EXPECT_EQ(jobs[0].epoch, 1);
  ASSERT_EQ(jobs[0].records.size(), 3U);  // the batch limit
  EXPECT_EQ(jobs[0].records.front().offset, 100);
  EXPECT_EQ(jobs[0].records.back().offset, 102);
  EXPECT_EQ(Of(0).out_bytes, 3 * HeldBytes(Record(0, 100)));
  now_ += 1s;
  EXPECT_TRUE(Due().empty());  // the first batch is still out
  ASSERT_TRUE(parts_.OnLanded(0, gen, 103));
  EXPECT_EQ(Of(0).checkpoint, 103);
  EXPECT_EQ(parts_.buffered_bytes(), HeldBytes(Record(0, 103)));  // what is still buffered
  jobs = Due();                                                   // the rest, lingered long enough
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].records.size(), 1U);
}

TEST_F(PartitionsTest, ABatchUnderItsLimitsWaitsForTheLingerUnlessFlushed) {
  Active(0);
  parts_.Append(Record(0, 100), now_);
  now_ += 49ms;
  EXPECT_TRUE(Due().empty());
  EXPECT_EQ(Due(/*flush=*/true).size(), 1U);
}

TEST_F(PartitionsTest, AFailedBatchIsLandedAgainFirstAfterItsBackoff) {
  const std::uint64_t gen = Active(0);
  for (std::int64_t o = 100; o < 103; ++o) parts_.Append(Record(0, o), now_);
  auto jobs = Due();
  ASSERT_EQ(jobs.size(), 1U);
  parts_.Append(Record(0, 103), now_);  // more arrives meanwhile
  ASSERT_TRUE(parts_.OnLandingFailed(0, gen, std::move(jobs[0].records), now_));
  EXPECT_EQ(Of(0).retry_at, now_ + 200ms);
  now_ += 199ms;
  EXPECT_TRUE(Due().empty());
  now_ += 1ms;
  jobs = Due();
  ASSERT_EQ(jobs.size(), 1U);
  ASSERT_EQ(jobs[0].records.size(), 3U);  // the same batch, not the newer record
  EXPECT_EQ(jobs[0].records.front().offset, 100);
  ASSERT_TRUE(parts_.OnLandingFailed(0, gen, std::move(jobs[0].records), now_));
  EXPECT_EQ(Of(0).retry_at, now_ + 400ms);
  EXPECT_EQ(Due(/*flush=*/true).size(), 1U);  // shutdown does not wait for the backoff
}

TEST_F(PartitionsTest, AFencedBatchDropsEverythingFetchedAndTheResultsOfTheOldClaim) {
  const std::uint64_t gen = Active(0);
  for (std::int64_t o = 100; o < 103; ++o) parts_.Append(Record(0, o), now_);
  ASSERT_EQ(Due().size(), 1U);
  parts_.Append(Record(0, 103), now_);
  ASSERT_TRUE(parts_.OnLandingFenced(0, gen, now_));
  const Partition& st = Of(0);
  EXPECT_EQ(st.phase, Phase::kClaiming);
  EXPECT_NE(st.generation, gen);
  EXPECT_TRUE(st.buffer.empty());
  EXPECT_FALSE(st.landing);
  EXPECT_EQ(st.held_bytes, 0U);
  EXPECT_EQ(parts_.buffered_bytes(), 0U);
  EXPECT_FALSE(parts_.OnLanded(0, gen, 103));  // a late result of the old claim
  EXPECT_EQ(parts_.Append(Record(0, 104), now_), AppendResult::kIgnored);
  auto jobs = Due();
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].kind, Kind::kClaim);
  EXPECT_EQ(jobs[0].generation, st.generation);
}

TEST_F(PartitionsTest, BackPressurePausesAPartitionUntilItsBufferAndTheTotalHaveHalved) {
  const std::uint64_t gen = Active(0);
  for (std::int64_t o = 100; o < 103; ++o) {
    EXPECT_EQ(parts_.Append(Record(0, o), now_), AppendResult::kBuffered);
  }
  EXPECT_EQ(parts_.Append(Record(0, 103), now_), AppendResult::kPause);  // the 4th record
  EXPECT_TRUE(Of(0).backpressure);
  EXPECT_EQ(parts_.Append(Record(0, 104), now_), AppendResult::kBuffered);  // paused once
  auto jobs = Due();
  ASSERT_EQ(jobs.size(), 1U);  // a batch of 3; 2 left: not under half of 4 yet
  ASSERT_TRUE(parts_.OnLanded(0, gen, 103));
  jobs = Due(/*flush=*/true);  // the last 2 go out, the buffer is empty: resume
  ASSERT_EQ(jobs.size(), 2U);
  EXPECT_EQ(jobs[0].kind, Kind::kLand);
  EXPECT_EQ(jobs[1].kind, Kind::kResume);
  EXPECT_FALSE(Of(0).backpressure);
}

TEST_F(PartitionsTest, TheByteBudgetPausesAtHalfAndResumesUnderAQuarter) {
  limits_.max_buffered_records = 1000;
  limits_.max_buffered_bytes = 8 * HeldBytes(Record(0, 0, 1000));
  parts_ = Partitions(limits_);
  const std::uint64_t gen = Active(0);
  for (std::int64_t o = 100; o < 103; ++o) {
    EXPECT_EQ(parts_.Append(Record(0, o, 1000), now_), AppendResult::kBuffered);
  }
  EXPECT_EQ(parts_.Append(Record(0, 103, 1000), now_), AppendResult::kPause);  // 4 of 8: half
  auto jobs = Due();  // 3 out: they still count until landed
  ASSERT_EQ(jobs.size(), 1U);
  ASSERT_TRUE(parts_.OnLanded(0, gen, 103));
  jobs = Due();  // 1 held of 8: under a quarter
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].kind, Kind::kResume);
}

TEST_F(PartitionsTest, AnEpochMovedByAnOperatorOrAnotherOwnerFencesTheIdlePartition) {
  Active(0);
  Active(1);
  Active(2);
  Active(3);
  parts_.Assign(4, now_);  // still claiming: not asked about
  for (std::int64_t o = 100; o < 103; ++o) parts_.Append(Record(3, o), now_);
  ASSERT_EQ(Due().size(), 2U);  // the claim of 4, a batch of 3
  const auto asked = parts_.EpochsToCheck();
  EXPECT_EQ(asked, (std::map<std::int32_t, std::int64_t>{{0, 1}, {1, 1}, {2, 1}, {3, 1}}));
  parts_.EpochCheckPosted();
  EXPECT_TRUE(parts_.epoch_check_posted());
  const auto fenced = parts_.OnEpochs(
      asked, {{0, {2, "me"}}, {1, {2, "other"}}, {2, {1, "me"}}, {3, {2, "other"}}}, "me", now_);
  EXPECT_FALSE(parts_.epoch_check_posted());
  ASSERT_EQ(fenced.size(), 2U);
  EXPECT_EQ(fenced[0], std::pair(0, EpochMove::kReset));
  EXPECT_EQ(fenced[1], std::pair(1, EpochMove::kClaimedElsewhere));
  EXPECT_EQ(Of(0).phase, Phase::kClaiming);
  EXPECT_EQ(Of(1).phase, Phase::kClaiming);
  EXPECT_EQ(Of(2).phase, Phase::kActive);                       // unchanged
  EXPECT_EQ(Of(3).phase, Phase::kActive);                       // its landing batch will find out
  EXPECT_TRUE(parts_.OnEpochs(asked, {}, "me", now_).empty());  // a failed check
}

TEST_F(PartitionsTest, AnOutOfRangePositionIsCheckedOnceWhatWasFetchedHasLanded) {
  parts_.Assign(1, now_);
  EXPECT_EQ(parts_.OnOutOfRange(1), OutOfRangeResult::kNotActive);
  EXPECT_EQ(parts_.OnOutOfRange(2), OutOfRangeResult::kNotActive);
  const std::uint64_t gen = Active(0);
  parts_.Append(Record(0, 100), now_);
  EXPECT_EQ(parts_.OnOutOfRange(0), OutOfRangeResult::kFirstReport);
  EXPECT_EQ(parts_.OnOutOfRange(0), OutOfRangeResult::kRepeated);
  auto jobs = Due();  // lands at once, no linger; then the claim of 1
  ASSERT_EQ(jobs.size(), 2U);
  EXPECT_EQ(jobs[0].kind, Kind::kLand);
  EXPECT_EQ(jobs[1].kind, Kind::kClaim);
  ASSERT_TRUE(parts_.OnLanded(0, gen, 101));
  jobs = Due();
  ASSERT_EQ(jobs.size(), 1U);
  EXPECT_EQ(jobs[0].kind, Kind::kGapCheck);
  EXPECT_EQ(jobs[0].from, 101);
  EXPECT_EQ(jobs[0].start, 101);
  EXPECT_EQ(jobs[0].epoch, 1);
  EXPECT_TRUE(Due().empty());  // one check at a time
  ASSERT_TRUE(parts_.OnGapCheckFailed(0, gen, now_));
  EXPECT_TRUE(Due().empty());
  now_ += 1s;
  ASSERT_EQ(Due().size(), 1U);
  EXPECT_EQ(parts_.OnGapChecked(0, gen, {false, false, /*skipped=*/true, 150}, now_),
            GapResult::kResume);
  EXPECT_EQ(Of(0).checkpoint, 150);
  EXPECT_EQ(Of(0).expected_offset, 150);
  EXPECT_FALSE(Of(0).out_of_range);
  EXPECT_EQ(parts_.Append(Record(0, 149), now_), AppendResult::kIgnored);
  EXPECT_EQ(parts_.Append(Record(0, 150), now_), AppendResult::kBuffered);
}

TEST_F(PartitionsTest, ACheckpointAboveTheLogStopsThePartition) {
  const std::uint64_t gen = Active(0);
  parts_.OnOutOfRange(0);
  ASSERT_EQ(Due().size(), 1U);
  EXPECT_EQ(parts_.OnGapChecked(0, gen, {false, /*ahead=*/true, false, std::nullopt}, now_),
            GapResult::kStopped);
  EXPECT_EQ(Of(0).phase, Phase::kStopped);
  EXPECT_EQ(parts_.Append(Record(0, 100), now_), AppendResult::kIgnored);
  EXPECT_TRUE(Due(/*flush=*/true).empty());
  EXPECT_EQ(parts_.EpochsToCheck().count(0), 1U);  // a reset is seen by the epoch check
}

TEST_F(PartitionsTest, ACheckpointMovedDuringTheGapCheckFencesThePartition) {
  const std::uint64_t gen = Active(0);
  parts_.OnOutOfRange(0);
  ASSERT_EQ(Due().size(), 1U);
  EXPECT_EQ(parts_.OnGapChecked(0, gen, {/*fenced=*/true, false, true, std::nullopt}, now_),
            GapResult::kFenced);
  EXPECT_EQ(Of(0).phase, Phase::kClaiming);
  EXPECT_FALSE(Of(0).out_of_range);
  EXPECT_EQ(parts_.OnGapChecked(0, gen, {false, false, false, 1}, now_), GapResult::kStale);
}

TEST_F(PartitionsTest, FetchingThatCannotStartIsClaimedAfreshASecondLater) {
  Active(0);
  parts_.OnStartFailed(0, now_);
  EXPECT_EQ(Of(0).phase, Phase::kClaiming);
  now_ += 999ms;
  EXPECT_TRUE(Due().empty());
  now_ += 1ms;
  EXPECT_EQ(Due().size(), 1U);
}

TEST_F(PartitionsTest, AReleasedPartitionGivesBackItsBudget) {
  Active(0);
  Active(1);
  parts_.Append(Record(0, 100), now_);
  parts_.Append(Record(1, 100), now_);
  EXPECT_TRUE(parts_.Release(0));
  EXPECT_FALSE(parts_.Release(0));
  EXPECT_EQ(parts_.Find(0), nullptr);
  EXPECT_EQ(parts_.buffered_bytes(), HeldBytes(Record(1, 100)));
  EXPECT_FALSE(parts_.Drained());
  EXPECT_TRUE(parts_.Release(1));
  EXPECT_TRUE(parts_.Drained());
}

TEST_F(PartitionsTest, AReassignmentKeepsConsumingPartitionsAtTheirNextRecordAndPausedOnesPaused) {
  Active(0, 100);
  parts_.Append(Record(0, 100), now_);
  Active(1, 50);
  parts_.Assign(2, now_);
  Active(3, 7);
  parts_.OnOutOfRange(3);
  EXPECT_EQ(parts_.PlacementOf(0).offset, 101);
  EXPECT_FALSE(parts_.PlacementOf(0).paused);
  EXPECT_EQ(parts_.PlacementOf(1).offset, 50);
  EXPECT_FALSE(parts_.PlacementOf(2).offset);
  EXPECT_TRUE(parts_.PlacementOf(2).paused);  // claiming
  EXPECT_FALSE(parts_.PlacementOf(3).offset);
  EXPECT_TRUE(parts_.PlacementOf(3).paused);   // out of range
  EXPECT_FALSE(parts_.PlacementOf(9).paused);  // not ours to decide
}

TEST(PlaceInLogTest, TheCheckpointDecidesWhereAnOutOfRangePartitionGoesOn) {
  using K = LogPlace::Kind;
  // The log holds [100, 200).
  EXPECT_EQ(PlaceInLog(150, 0, 100, 200).kind, K::kInside);
  EXPECT_EQ(PlaceInLog(150, 0, 100, 200).at, 150);
  EXPECT_EQ(PlaceInLog(200, 0, 100, 200).kind, K::kInside);  // at the end: waits for records
  EXPECT_EQ(PlaceInLog(100, 0, 100, 200).kind, K::kInside);
  EXPECT_EQ(PlaceInLog(99, 0, 100, 200).kind, K::kBelowStart);
  EXPECT_EQ(PlaceInLog(99, 0, 100, 200).at, 100);  // skips to the log start
  EXPECT_EQ(PlaceInLog(201, 0, 100, 200).kind, K::kAboveEnd);
  // No checkpoint: where it was started, within the log; a logical start as it is.
  EXPECT_EQ(PlaceInLog(std::nullopt, 50, 100, 200).at, 100);
  EXPECT_EQ(PlaceInLog(std::nullopt, 250, 100, 200).at, 200);
  EXPECT_EQ(PlaceInLog(std::nullopt, 150, 100, 200).at, 150);
  EXPECT_EQ(PlaceInLog(std::nullopt, -2, 100, 200).at, -2);
  EXPECT_EQ(PlaceInLog(std::nullopt, 250, 100, 200).kind, K::kInside);
}

TEST(LagRecordsTest, CountsFromTheCheckpointElseFromTheLogStart) {
  EXPECT_EQ(LagRecords(90, 10, 100), 10);
  EXPECT_EQ(LagRecords(std::nullopt, 10, 100), 90);
  EXPECT_EQ(LagRecords(std::nullopt, -1, 100), 100);
  EXPECT_EQ(LagRecords(120, 10, 100), 0);
}

}  // namespace
}  // namespace ferry::d2c
