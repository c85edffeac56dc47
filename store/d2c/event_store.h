#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/audit/audit.h"
#include "core/clock.h"
#include "core/d2c/landing_plan.h"
#include "core/d2c/record.h"
#include "core/routing/route_set.h"
#include "store/d2c/checkpoint_store.h"
#include "store/d2c/day_partitions.h"

namespace pqxx {
class dbtransaction;
}

namespace ferry::pg {
class Pool;
}

namespace ferry::d2c {

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
  virtual void Deliver(const std::vector<OutgoingRecord>& records) = 0;
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

// The D2C event store (migrations 0003, 0005, 0010): landing, re-drive, and
// the small stores it is made of, which callers may also use through it:
// CheckpointStore (who owns a partition, where it resumes), DayPartitions
// (d2c_events' days). Landing plans each batch with core/d2c/landing_plan.h
// and applies the plan in one transaction. Thread-safe.
class EventStore final {
 public:
  explicit EventStore(pg::Pool& pool) : pool_(pool), checkpoints_(pool), days_(pool) {}

  // Routing (null: everything to the store, as with no routes and the
  // fallback on). `routes` returns the route set for the next batch; `sink`
  // delivers to Kafka endpoints; `hub_name` fills `$iothubname`.
  void SetRouting(std::function<std::shared_ptr<const routing::RouteSet>()> routes,
                  EndpointSink* sink, std::string hub_name);

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

  std::vector<DeadLetterRow> DeadLetters(const DeadLetterFilter& filter);
  // Takes each record out of the dead letters and through the landing
  // planner again, one transaction each: it lands once (store, Kafka
  // endpoints, or the dropped count), or stays with its new reason.
  std::vector<RedriveResult> Redrive(
      const std::string& group, const std::string& topic,
      const std::vector<std::pair<std::int32_t, std::int64_t>>& records, TimePoint now,
      const audit::Entry* audit = nullptr);

  [[nodiscard]] CheckpointStore& checkpoints() { return checkpoints_; }
  [[nodiscard]] DayPartitions& days() { return days_; }

  // The same, for the callers that hold an EventStore (see CheckpointStore
  // and DayPartitions).
  Claim ClaimPartition(const PartitionId& id, const std::string& owner) {
    return checkpoints_.ClaimPartition(id, owner);
  }
  [[nodiscard]] std::optional<std::int64_t> NextOffset(const PartitionId& id) {
    return checkpoints_.NextOffset(id);
  }
  std::vector<CheckpointRow> Checkpoints(const std::string& group, const std::string& topic) {
    return checkpoints_.Checkpoints(group, topic);
  }
  std::map<std::int32_t, std::pair<std::int64_t, std::string>> Epochs(const std::string& group,
                                                                      const std::string& topic) {
    return checkpoints_.Epochs(group, topic);
  }
  CheckpointRow ResetCheckpoint(const PartitionId& id, std::int64_t next_offset,
                                const audit::Entry* audit = nullptr) {
    return checkpoints_.ResetCheckpoint(id, next_offset, audit);
  }
  GapOutcome SkipDeleted(const PartitionId& id, std::int64_t epoch, std::int64_t from,
                         std::int64_t to, const std::string& owner) {
    return checkpoints_.SkipDeleted(id, epoch, from, to, owner);
  }
  std::vector<std::string> EnsureDays(TimePoint now, int ahead_days, int retention_days) {
    return days_.Ensure(now, ahead_days, retention_days);
  }
  std::vector<std::string> DropExpiredDays(TimePoint now, int retention_days) {
    return days_.DropExpired(now, retention_days);
  }
  [[nodiscard]] DayRange Days() { return days_.Range(); }
  void RefreshDays() { days_.Refresh(); }

 private:
  LandingOutcome LandOnce(const LandingBatch& batch, std::size_t begin, std::size_t end,
                          TimePoint now, const routing::RouteSet& routes,
                          const std::optional<std::string>& refused);
  LandingOutcome LandBare(const LandingBatch& one, const std::string& error);
  LandingOutcome LandSplitting(const LandingBatch& batch, std::size_t begin, std::size_t end,
                               TimePoint now, const routing::RouteSet& routes);
  void Apply(pqxx::dbtransaction& tx, const PartitionId& id, const LandingPlan& plan,
             const routing::RouteSet& routes, LandingOutcome& out);
  RedriveResult RedriveOne(const PartitionId& id, std::int64_t offset, TimePoint now,
                           const routing::RouteSet& routes, const audit::Entry* audit,
                           const std::optional<std::string>& refused);
  std::shared_ptr<const routing::RouteSet> Routes();
  void Deliver(const std::vector<OutgoingRecord>& records);

  pg::Pool& pool_;
  CheckpointStore checkpoints_;
  DayPartitions days_;
  std::function<std::shared_ptr<const routing::RouteSet>()> routes_;
  EndpointSink* sink_ = nullptr;
  std::string hub_name_ = "ferry";
};

}  // namespace ferry::d2c
