#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/d2c/record.h"

// The lifecycle of the Kafka partitions a D2C consumer is assigned, as a
// pure state machine (docs/event-store.md, docs/reliability.md): claiming
// (paused, the claim in PostgreSQL retried with backoff) -> active
// (fetching, landing one batch at a time, a failed batch retried first, a
// fenced one dropped with everything fetched and the partition claimed
// afresh) -> stopped (the checkpoint is above the log's end); an
// out-of-range fetch position is checked against the log before fetching
// goes on; back-pressure pauses a partition. consumers/d2c/consumer.cc feeds
// it Kafka's and the store's events and carries out what it decides; every
// decision about a partition is made here, on the time passed in.

namespace ferry::d2c {

using SteadyTime = std::chrono::steady_clock::time_point;

// What a fetched record takes in memory here: its bytes, the record and
// its headers, and an allocation's overhead per string.
[[nodiscard]] std::size_t HeldBytes(const KafkaRecord& r);

// Records between the checkpoint and the high watermark; without a
// checkpoint yet, everything still in the log [low, high) is unread.
[[nodiscard]] std::int64_t LagRecords(std::optional<std::int64_t> checkpoint, std::int64_t low,
                                      std::int64_t high);

struct PartitionLimits {
  BatchLimits batch;
  std::chrono::milliseconds linger{50};
  // Beyond this many fetched-but-unlanded records a partition is paused.
  std::size_t max_buffered_records = 20000;
  // The budget of the records held here and librdkafka's prefetch: half of
  // it is for the records held here (ConsumerOptions::max_buffered_bytes).
  std::size_t max_buffered_bytes = 64 << 20;
};

// One assigned partition. Read through Partitions; only Partitions changes it.
struct Partition {
  // kStopped: the checkpoint is above the log's end; nothing is fetched
  // until an operator resets the checkpoint (its epoch moves).
  enum class Phase { kClaiming, kActive, kStopped };
  Phase phase = Phase::kClaiming;
  // Changes with every assignment and fence: results of work posted for an
  // older generation are ignored.
  std::uint64_t generation = 0;
  std::int64_t epoch = 0;
  std::optional<std::int64_t> expected_offset;  // records below it are stale
  std::int64_t start_offset = 0;                // where the claim started it (absolute or logical)
  std::optional<std::int64_t> checkpoint;
  std::deque<KafkaRecord> buffer;
  std::size_t buffer_bytes = 0;  // size_bytes() of the buffer (batch limits)
  // HeldBytes() of the buffer and of the batch out or kept for a retry
  // (out_bytes of it): this partition's share of the memory budget.
  std::size_t held_bytes = 0;
  std::size_t out_bytes = 0;
  SteadyTime first_buffered;
  std::optional<std::vector<KafkaRecord>> retry;  // a batch to land again first
  SteadyTime retry_at;
  int failures = 0;
  SteadyTime claim_at;  // when to (re)try claiming
  bool claim_posted = false;
  // A batch is out and its result not yet handled here: the next batch must
  // wait, or a retried batch could be overtaken.
  bool landing = false;
  bool backpressure = false;
  // Kafka refused the fetch position (offset out of range) and stopped
  // fetching: once what was fetched has landed, a gap check compares the
  // checkpoint with the log (never Kafka's auto.offset.reset).
  bool out_of_range = false;
  bool gap_check_posted = false;
  SteadyTime gap_check_at;
};

// Work the consumer is to start now (Partitions::Dispatch), in this order.
struct PartitionJob {
  enum class Kind {
    kClaim,     // claim the partition in the store (epoch + 1), read its checkpoint
    kGapCheck,  // compare the checkpoint (`from`, else `start`) with the log
    kLand,      // land `records` under `epoch`
    kResume,    // back-pressure is over: resume fetching
  };
  Kind kind = Kind::kClaim;
  std::int32_t partition = 0;
  std::uint64_t generation = 0;
  std::int64_t epoch = 0;
  std::optional<std::int64_t> from;  // kGapCheck: the checkpoint
  std::int64_t start = 0;            // kGapCheck: the fetch position without a checkpoint
  std::vector<KafkaRecord> records;  // kLand
};

// Where the consumer stands with a partition it re-assigns together with
// another one: the offset to give it (nullopt: leave librdkafka's) and
// whether it must stay paused.
struct Placement {
  std::optional<std::int64_t> offset;
  bool paused = false;
};

// Why an owned partition's epoch moved (OnEpochs).
enum class EpochMove { kReset, kClaimedElsewhere };

enum class AppendResult { kIgnored, kBuffered, kPause };
enum class OutOfRangeResult { kNotActive, kFirstReport, kRepeated };
enum class GapResult { kStale, kFenced, kStopped, kResume };

// Where an out-of-range partition stands against the log's [low, high).
struct LogPlace {
  enum class Kind {
    kInside,      // fetch again at `at`
    kBelowStart,  // the records from the checkpoint up to `at` (the log start)
                  // were deleted: skip them (recorded as a gap), then fetch at `at`
    kAboveEnd,    // the checkpoint is above the log's end (a re-created topic?)
  };
  Kind kind = Kind::kInside;
  std::int64_t at = 0;
};
// Without a checkpoint (nothing landed yet), where it was started: a logical
// start as it is, an absolute one within the log.
[[nodiscard]] LogPlace PlaceInLog(std::optional<std::int64_t> checkpoint, std::int64_t start,
                                  std::int64_t low, std::int64_t high);

// The checked position of an out-of-range partition (the store's and the
// log's answer, see consumers/d2c/consumer.cc).
struct GapCheck {
  bool fenced = false;                    // the checkpoint moved while skipping deleted records
  bool ahead = false;                     // the checkpoint is above the log's end
  bool skipped = false;                   // deleted records were skipped (the checkpoint moved)
  std::optional<std::int64_t> resume_at;  // where fetching starts again
};

// The partitions assigned to one consumer, and the memory budget they share.
// Every method that takes (partition, generation) ignores a result for a
// partition no longer assigned or since fenced, returning false or kStale.
class Partitions final {
 public:
  explicit Partitions(PartitionLimits limits) : limits_(limits) {}

  [[nodiscard]] const std::map<std::int32_t, Partition>& all() const { return parts_; }
  [[nodiscard]] const Partition* Find(std::int32_t p) const;
  // Fetched-but-unlanded bytes over all partitions (HeldBytes).
  [[nodiscard]] std::size_t buffered_bytes() const { return buffered_bytes_; }

  // Kafka assigned `p` (paused): it is claimed at once.
  void Assign(std::int32_t p, SteadyTime now);
  // Kafka took `p` away (the caller waited for its work): false if unknown.
  bool Release(std::int32_t p);

  // A fetched record: buffered if `p` is active and the record is not a
  // stale pre-seek fetch; kPause when back-pressure pauses `p` now.
  AppendResult Append(KafkaRecord record, SteadyTime now);

  // The work due now; `flush` lands what is buffered and retries at once
  // (shutdown), `stopping` posts no new claims or gap checks.
  std::vector<PartitionJob> Dispatch(SteadyTime now, bool flush, bool stopping);

  // Claim results. Claimed: `p` becomes active and is to be started at
  // `start_offset` (absolute or logical); on false, nothing is to be done.
  bool OnClaimFailed(std::int32_t p, std::uint64_t generation, SteadyTime now);
  bool OnClaimed(std::int32_t p, std::uint64_t generation, std::int64_t epoch,
                 std::optional<std::int64_t> checkpoint, std::int64_t start_offset);
  // Fetching could not be started where decided: claimed afresh in a second.
  void OnStartFailed(std::int32_t p, SteadyTime now);

  // Landing results. Landed: the batch is off the budget and the checkpoint
  // is `next_offset`. Failed: the same records are landed again first, with
  // backoff. Fenced: `p` is claimed afresh (everything fetched dropped).
  bool OnLanded(std::int32_t p, std::uint64_t generation, std::int64_t next_offset);
  bool OnLandingFailed(std::int32_t p, std::uint64_t generation, std::vector<KafkaRecord> records,
                       SteadyTime now);
  bool OnLandingFenced(std::int32_t p, std::uint64_t generation, SteadyTime now);

  // The epochs to compare with the store's (partitions claimed here), and
  // whether such a check may be posted now (one at a time).
  [[nodiscard]] std::map<std::int32_t, std::int64_t> EpochsToCheck() const;
  [[nodiscard]] bool epoch_check_posted() const { return epochs_posted_; }
  void EpochCheckPosted() { epochs_posted_ = true; }
  // The store's epochs and owners (empty when the check failed), against
  // `asked`: a partition whose epoch moved while no batch was landing is
  // fenced and claimed afresh (an operator's reset if `owner` still holds
  // it, else another member's claim). Returns the partitions fenced.
  std::vector<std::pair<std::int32_t, EpochMove>> OnEpochs(
      const std::map<std::int32_t, std::int64_t>& asked,
      const std::map<std::int32_t, std::pair<std::int64_t, std::string>>& epochs,
      const std::string& owner, SteadyTime now);

  // Kafka stopped fetching `p`: its position is out of the log.
  OutOfRangeResult OnOutOfRange(std::int32_t p);
  bool OnGapCheckFailed(std::int32_t p, std::uint64_t generation, SteadyTime now);
  // kResume: fetching is to start again at `check.resume_at` (what was
  // buffered since is dropped and fetched again).
  GapResult OnGapChecked(std::int32_t p, std::uint64_t generation, const GapCheck& check,
                         SteadyTime now);

  // Where the consumer stands with `p` when another partition is re-assigned.
  [[nodiscard]] Placement PlacementOf(std::int32_t p) const;
  // Nothing fetched is waiting to be landed.
  [[nodiscard]] bool Drained() const;

 private:
  Partition* Current(std::int32_t p, std::uint64_t generation);
  // Drops what was fetched for `st` and claims it afresh (the caller pauses it).
  void Fence(Partition& st, SteadyTime now);
  [[nodiscard]] static std::chrono::milliseconds Backoff(int failures);

  PartitionLimits limits_;
  std::map<std::int32_t, Partition> parts_;
  // Fetched-but-unlanded bytes over all partitions: past half the budget, a
  // partition that receives more is paused until the total is under a quarter.
  std::size_t buffered_bytes_ = 0;
  std::uint64_t next_generation_ = 1;
  bool epochs_posted_ = false;
};

}  // namespace ferry::d2c
