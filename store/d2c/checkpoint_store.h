#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/audit/audit.h"
#include "core/clock.h"

namespace ferry::pg {
class Pool;
}

namespace ferry::d2c {

struct PartitionId {
  std::string group;
  std::string topic;
  std::int32_t partition = 0;
};

struct Claim {
  std::int64_t epoch = 0;
  std::optional<std::int64_t> next_offset;  // nullopt: no checkpoint yet
};

struct CheckpointRow {
  std::string topic;
  std::int32_t partition = 0;
  std::optional<std::int64_t> next_offset;
  std::optional<std::int64_t> high_offset;
  std::int64_t epoch = 0;
  std::string owner;
  TimePoint claimed_at;
  TimePoint updated_at;
  std::int64_t dropped = 0;
  std::int64_t routed_elsewhere = 0;
  std::int64_t replay_skipped = 0;
  std::optional<std::int64_t> route_version;
  std::int64_t lost = 0;  // records Kafka deleted before they landed (d2c_gaps)
};

// What SkipDeleted did.
struct GapOutcome {
  // The epoch moved or the checkpoint is no longer `from`: nothing written.
  bool fenced = false;
  // The range recorded as lost (empty when lost_from == lost_to): the part
  // of [from, to) at or above the high offset, never landed.
  std::int64_t lost_from = 0;
  std::int64_t lost_to = 0;
  // The part below the high offset: landed before (this is a replay), so
  // skipped, not lost.
  std::int64_t replay_skipped = 0;
};

// d2c_checkpoints (and d2c_gaps): who owns each partition of a consumer
// group (its epoch fences every earlier owner), where landing resumes, and
// what was dropped, routed elsewhere, skipped on replay or lost. Landing
// moves a checkpoint in its own transaction (store/d2c/sql_rows.h's fence);
// everything else that moves one is here. Thread-safe.
class CheckpointStore final {
 public:
  explicit CheckpointStore(pg::Pool& pool) : pool_(pool) {}

  // Takes a partition over: bumps its epoch (or starts it at 1) and records
  // the owner, returning the checkpoint to resume from. Any earlier owner's
  // batches are fenced from now on.
  Claim ClaimPartition(const PartitionId& id, const std::string& owner);
  [[nodiscard]] std::optional<std::int64_t> NextOffset(const PartitionId& id);

  // Checkpoints of a consumer group (all topics when `topic` is empty).
  std::vector<CheckpointRow> Checkpoints(const std::string& group, const std::string& topic);
  // Current epoch and owner of the group's partitions of `topic`.
  std::map<std::int32_t, std::pair<std::int64_t, std::string>> Epochs(const std::string& group,
                                                                      const std::string& topic);
  // Moves a partition's checkpoint to `next_offset`, bumping its epoch and
  // keeping its owner (who sees its fence, re-reads the checkpoint and
  // seeks) and its high offset (what lies below it is a replay). Creates the
  // row for a partition never claimed. Returns the new row.
  // Records `audit`, when given, with the old and new offsets in the same
  // transaction.
  CheckpointRow ResetCheckpoint(const PartitionId& id, std::int64_t next_offset,
                                const audit::Entry* audit = nullptr);

  // Moves the checkpoint from `from` over records Kafka no longer has, to
  // `to` (the log start), in one transaction fenced like landing: the part
  // of [from, to) never landed (at or above the high offset) is written to
  // d2c_gaps and added to the partition's `lost`; the part below it (a
  // replay that retention overtook) is counted as replay_skipped.
  GapOutcome SkipDeleted(const PartitionId& id, std::int64_t epoch, std::int64_t from,
                         std::int64_t to, const std::string& owner);

 private:
  pg::Pool& pool_;
};

}  // namespace ferry::d2c
