#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/audit/audit.h"
#include "core/clock.h"
#include "core/d2c/record.h"
#include "core/kafka/producer.h"
#include "core/routing/route_set.h"

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
  bool fenced = false;     // the epoch is no longer ours: nothing was written
  std::size_t events = 0;  // new rows in the store
  std::size_t bytes = 0;
  std::map<DeadLetterReason, std::size_t> dead_letters;
  std::int64_t next_offset = 0;
  int transactions = 0;
  // Routing: messages delivered per endpoint name (the store's `events`
  // included, replays too), messages that matched no route with the
  // fallback off (or lifecycle events no route took), and routes whose
  // condition evaluated to undefined, by route name.
  std::map<std::string, std::size_t> routed;
  std::size_t dropped = 0;
  // Messages not delivered to a Kafka endpoint because its enrichments made
  // them larger than IoT Hub's 256 KB, by endpoint name.
  std::map<std::string, std::size_t> oversized;
  std::map<std::string, std::size_t> undefined;
  // Replay (records below the partition's high offset): rows already in the
  // store or the dead letters, and records past retention, skipped.
  std::size_t replay_skipped = 0;
  std::int64_t route_version = 0;
};

// Delivers routed messages to Kafka endpoints: returns once every record is
// acknowledged, or throws ferry::Error(kServiceUnavailable). Thread-safe.
class EndpointSink {
 public:
  virtual ~EndpointSink() = default;
  virtual void Deliver(const std::vector<kafka::OutgoingRecord>& records) = 0;
};

// What the dead-letter table holds of one record.
struct DeadLetterRow {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string reason;
  std::string detail;
  TimePoint dead_lettered_at;
  KafkaRecord record;  // as sent
};

struct DeadLetterFilter {
  std::string group;
  std::string topic;
  std::optional<std::string> reason;
  std::optional<std::int32_t> partition;
  // Resume after this (partition, offset).
  std::optional<std::pair<std::int32_t, std::int64_t>> after;
  std::size_t limit = 100;
};

struct RedriveResult {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  // "stored", "routed" (to Kafka endpoints only), "dropped",
  // "still_dead" (reason says why) or "not_found".
  std::string outcome;
  std::string reason;
  std::string detail;
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

// Tables d2c_events (day partitions), d2c_dead_letters and d2c_checkpoints
// (migration 0003). Thread-safe.
class EventStore final {
 public:
  explicit EventStore(pg::Pool& pool) : pool_(pool) {}

  // Routing (null: everything to the store, as with no routes and the
  // fallback on). `routes` returns the route set for the next batch; `sink`
  // delivers to Kafka endpoints; `hub_name` fills `$iothubname`.
  void SetRouting(std::function<std::shared_ptr<const routing::RouteSet>()> routes,
                  EndpointSink* sink, std::string hub_name);

  // Takes a partition over: bumps its epoch (or starts it at 1) and records
  // the owner, returning the checkpoint to resume from. Any earlier owner's
  // batches are fenced from now on.
  Claim ClaimPartition(const PartitionId& id, const std::string& owner);
  [[nodiscard]] std::optional<std::int64_t> NextOffset(const PartitionId& id);

  // Lands one batch exactly once: in one transaction, the checkpoint moves
  // to the offset after the batch (only while `epoch` is still current:
  // otherwise nothing is written and the outcome says fenced), each event is
  // routed against one route-set version (Kafka endpoints delivered before
  // the commit; the store's share by COPY) and the rest goes to
  // d2c_dead_letters. Below the partition's high offset (a replay after a
  // checkpoint reset) rows already landed are skipped. A row PostgreSQL
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
  // `to` (the log start), in one transaction fenced like Land: the part of
  // [from, to) never landed (at or above the high offset) is written to
  // d2c_gaps and added to the partition's `lost`; the part below it (a
  // replay that retention overtook) is counted as replay_skipped.
  GapOutcome SkipDeleted(const PartitionId& id, std::int64_t epoch, std::int64_t from,
                         std::int64_t to, const std::string& owner);

  std::vector<DeadLetterRow> DeadLetters(const DeadLetterFilter& filter);
  // Takes each record out of the dead letters and through decoding and
  // routing again, one transaction each: it lands once (store, Kafka
  // endpoints, or the dropped count), or stays with its new reason.
  std::vector<RedriveResult> Redrive(
      const std::string& group, const std::string& topic,
      const std::vector<std::pair<std::int32_t, std::int64_t>>& records, TimePoint now,
      const audit::Entry* audit = nullptr);

 private:
  LandingOutcome LandOnce(const LandingBatch& batch, std::size_t begin, std::size_t end,
                          TimePoint now, const DayRange& days, const routing::RouteSet& routes);
  LandingOutcome LandBare(const LandingBatch& one, const std::string& error);
  LandingOutcome LandSplitting(const LandingBatch& batch, std::size_t begin, std::size_t end,
                               TimePoint now, const routing::RouteSet& routes);
  std::shared_ptr<const routing::RouteSet> Routes();
  void Deliver(const std::vector<kafka::OutgoingRecord>& records);

  pg::Pool& pool_;
  std::function<std::shared_ptr<const routing::RouteSet>()> routes_;
  EndpointSink* sink_ = nullptr;
  std::string hub_name_ = "ferry";
  std::mutex mutex_;
  std::optional<DayRange> days_;
};

// "d2c_events_pYYYYMMDD".
[[nodiscard]] std::string DayPartitionName(std::chrono::sys_days day);

}  // namespace ferry::d2c
