#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/d2c/record.h"

namespace ferry::pg {
class Pool;
}

namespace ferry::d2c {

// A place in landing order: (writing transaction id, row id). Text form
// "<xid>.<id>".
struct Position {
  std::uint64_t xid = 0;
  std::int64_t id = -1;

  [[nodiscard]] std::string ToString() const;
  // nullopt for text that is not a position.
  [[nodiscard]] static std::optional<Position> Parse(const std::string& text);
};

// An event as the store holds it: the event landing wrote, where it came
// from, when it landed, and its position in commit order.
struct StoredEvent {
  Event event;
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  TimePoint landed_at;
  Position position;
};

struct EventQuery {
  std::string group;
  std::optional<std::string> device_id;
  std::optional<TimePoint> from;  // enqueued_time >= from
  std::optional<TimePoint> to;    // enqueued_time < to
  std::optional<Position> after;
  std::size_t limit = 100;
};

// Reads d2c_events in landing order. Only rows written by transactions that
// ended before the oldest one still running are returned, so that
// resuming after the last position seen misses nothing that commits later
// with a smaller id (docs/event-store.md). Thread-safe.
class EventReader final {
 public:
  explicit EventReader(pg::Pool& pool) : pool_(pool) {}

  [[nodiscard]] std::vector<StoredEvent> Read(const EventQuery& query);
  // The position before every event that lands from now on.
  [[nodiscard]] Position Now();

 private:
  pg::Pool& pool_;
};

}  // namespace ferry::d2c
