#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/d2c/record.h"
#include "core/routing/route_set.h"

namespace ferry::d2c {

// What landing decides for a batch, with no database or Kafka in sight. The
// event store executes a plan in one transaction (store/d2c/event_store.h);
// re-drive plans one dead letter the same way. Two steps, because part of the
// answer is only known under the partition's lock:
//
//   Classify  records, route set, store days -> each record's fate
//   Plan      + checkpoint, registry fields  -> rows, dead letters, endpoint
//                                               sends, counts, next checkpoint

// The first and last UTC days that have an event-store partition.
struct DayRange {
  std::optional<std::chrono::sys_days> first;
  std::optional<std::chrono::sys_days> last;
};

// One record's fate before the checkpoint is known: a decoded event (for the
// store and/or Kafka endpoints, or for nowhere: dropped) or a dead letter.
struct ClassifiedRecord {
  const KafkaRecord* record = nullptr;
  std::optional<Event> event;
  std::optional<DeadLetter> dead;
  bool to_store = false;
  std::vector<std::size_t> kafka;  // Kafka endpoints matched, by index in the route set
};

struct Classified {
  std::vector<ClassifiedRecord> records;
  // Routes whose condition evaluated to undefined, by route name.
  std::map<std::string, std::size_t> undefined;
};

// Decodes each record, routes the events, and dead-letters what the store
// should take but has no day for (out of retention, future timestamp). With
// `refused` set, every decodable record is dead-lettered as a data error
// with that detail instead (a row PostgreSQL refused). Pure.
[[nodiscard]] Classified Classify(const std::vector<KafkaRecord>& records, std::size_t begin,
                                  std::size_t end, TimePoint now, const DayRange& days,
                                  const routing::RouteSet& routes,
                                  const std::optional<std::string>& refused = std::nullopt);

// The partition's checkpoint as read under its lock: records below
// `next_offset` are already landed (a retried batch), those below
// `high_offset` are a replay after a checkpoint reset.
struct CheckpointState {
  std::optional<std::int64_t> next_offset;
  std::optional<std::int64_t> high_offset;
  friend bool operator==(const CheckpointState&, const CheckpointState&) = default;
};

// The devices whose registry fields `$device.` enrichments need, given the
// checkpoint (records it covers are not looked at).
[[nodiscard]] std::vector<std::string> DevicesToEnrich(const Classified& classified,
                                                       const CheckpointState& checkpoint);

// An event bound for the store, with its enrichments.
struct StoreRow {
  const KafkaRecord* record = nullptr;
  const Event* event = nullptr;
  std::vector<std::pair<std::string, std::string>> enrichments;
};

// An endpoint left out because enrichments pushed a message past 256 KB.
struct Oversized {
  std::string endpoint;
  const KafkaRecord* record = nullptr;
  std::size_t bytes = 0;
};

struct LandingPlan {
  // Sent to Kafka endpoints and acknowledged before the checkpoint commits.
  std::vector<OutgoingRecord> sends;
  // Written by COPY; `replayed` only where the record is not in the store or
  // the dead letters yet.
  std::vector<StoreRow> fresh;
  std::vector<StoreRow> replayed;
  std::vector<const ClassifiedRecord*> dead_letters;
  std::vector<const ClassifiedRecord*> replayed_dead_letters;
  std::vector<Oversized> oversized;
  // Messages per Kafka endpoint (the store's share is counted on writing).
  std::map<std::string, std::size_t> routed;
  std::size_t dropped = 0;  // matched no endpoint (replays included)
  // Added to the checkpoint's columns: replays are not counted again.
  std::int64_t dropped_counted = 0;
  std::int64_t routed_elsewhere = 0;
  // Replayed dead letters past retention or expiry: skipped, not kept.
  std::int64_t replay_skipped = 0;
  std::int64_t next_offset = 0;
};

// The plan for `classified` (which must outlive it) against the checkpoint
// and the registry fields of DevicesToEnrich. Pure.
[[nodiscard]] LandingPlan Plan(const Classified& classified, const CheckpointState& checkpoint,
                               const std::map<std::string, routing::DeviceFields>& fields,
                               const routing::RouteSet& routes, const std::string& hub_name);

// The record a Kafka endpoint receives for an event: the record contract,
// with enrichments added as application properties.
[[nodiscard]] OutgoingRecord ToEndpointRecord(
    const Event& event, const std::string& topic,
    const std::vector<std::pair<std::string, std::string>>& enrichments);

// "YYYY-MM-DD 00:00:00+00".
[[nodiscard]] std::string DayText(std::chrono::sys_days day);

}  // namespace ferry::d2c
