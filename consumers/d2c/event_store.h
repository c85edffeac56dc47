#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "consumers/d2c/record.h"
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

// The first and last UTC days that have an event-store partition.
struct DayRange {
  std::optional<std::chrono::sys_days> first;
  std::optional<std::chrono::sys_days> last;
};

struct LandingBatch {
  PartitionId id;
  std::int64_t epoch = 0;
  std::vector<KafkaRecord> records;  // consecutive fetches of one partition, in offset order
};

struct LandingOutcome {
  bool fenced = false;  // the epoch is no longer ours: nothing was written
  std::size_t events = 0;
  std::size_t bytes = 0;
  std::map<DeadLetterReason, std::size_t> dead_letters;
  std::int64_t next_offset = 0;
  int transactions = 0;
};

// Tables d2c_events (day partitions), d2c_dead_letters and d2c_checkpoints
// (migration 0003). Thread-safe.
class EventStore final {
 public:
  explicit EventStore(pg::Pool& pool) : pool_(pool) {}

  // Takes a partition over: bumps its epoch (or starts it at 1) and records
  // the owner, returning the checkpoint to resume from. Any earlier owner's
  // batches are fenced from now on.
  Claim ClaimPartition(const PartitionId& id, const std::string& owner);
  [[nodiscard]] std::optional<std::int64_t> NextOffset(const PartitionId& id);

  // Lands one batch exactly once: in one transaction, the checkpoint moves
  // to the offset after the batch (only while `epoch` is still current:
  // otherwise nothing is written and the outcome says fenced), the events go
  // to d2c_events by COPY and the rest to d2c_dead_letters. A row PostgreSQL
  // refuses is isolated by splitting the batch (each part its own
  // transaction and checkpoint) and dead-lettered. Throws
  // ferry::Error(kServiceUnavailable) when the database is unreachable;
  // nothing of the failed transaction is kept.
  LandingOutcome Land(const LandingBatch& batch, TimePoint now);

  // Day partitions. Ensure creates [today - retention_days, today +
  // ahead_days] where missing, each as a table then attached (never inside a
  // landing transaction), and returns the names created. DropExpired detaches
  // (with a lock timeout, retried) and drops days before today -
  // retention_days. Both serialise across replicas on an advisory lock.
  std::vector<std::string> EnsureDays(TimePoint now, int ahead_days, int retention_days);
  std::vector<std::string> DropExpiredDays(TimePoint now, int retention_days);
  [[nodiscard]] DayRange Days();
  void RefreshDays();

 private:
  LandingOutcome LandOnce(const LandingBatch& batch, std::size_t begin, std::size_t end,
                          TimePoint now, const DayRange& days);
  LandingOutcome LandBare(const LandingBatch& one, const std::string& error);
  LandingOutcome LandSplitting(const LandingBatch& batch, std::size_t begin, std::size_t end,
                               TimePoint now);

  pg::Pool& pool_;
  std::mutex mutex_;
  std::optional<DayRange> days_;
};

// "d2c_events_pYYYYMMDD".
[[nodiscard]] std::string DayPartitionName(std::chrono::sys_days day);

}  // namespace ferry::d2c
