#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/d2c/partition.h"
#include "core/d2c/record.h"

namespace spdlog {
class logger;
}

namespace ferry::kafka {

// Kafka's logical offsets.
inline constexpr std::int64_t kOffsetBeginning = -2;
inline constexpr std::int64_t kOffsetEnd = -1;

// A consumer-group member of one topic, as the D2C consumer uses it
// (consumers/d2c/consumer.cc): records come out as d2c::KafkaRecord,
// partitions are numbers, and librdkafka's rebalances and errors are
// reported to a Listener. Every call but QueryWatermarks and OffsetForTime
// (which any thread may make) is for the thread that calls Poll.
class GroupConsumer final {
 public:
  // Called on the poll thread, from inside Poll.
  class Listener {
   public:
    virtual ~Listener() = default;
    // A rebalance began: "assign", "revoke" or "lost" (revoked without a
    // clean hand-over).
    virtual void OnRebalance(const char* kind) = 0;
    // The partitions are assigned, paused.
    virtual void OnAssigned(const std::vector<std::int32_t>& partitions) = 0;
    // The partitions are taken away; they are unassigned when this returns.
    virtual void OnRevoked(const std::vector<std::int32_t>& partitions, bool lost) = 0;
    // A fatal error: this consumer cannot go on (the process should restart).
    virtual void OnFatal(const std::string& error) = 0;
  };

  // Creates the handle with `properties` (librdkafka's, applied in order:
  // a later one overrides). Throws std::runtime_error naming a bad one.
  GroupConsumer(const std::vector<std::pair<std::string, std::string>>& properties,
                std::string topic, Listener& listener, std::shared_ptr<spdlog::logger> logger);
  // Destroys the handle; see Close for when it must not be destroyed.
  ~GroupConsumer();
  GroupConsumer(const GroupConsumer&) = delete;
  GroupConsumer& operator=(const GroupConsumer&) = delete;

  // Joins the group. Throws std::runtime_error.
  void Subscribe();

  // Waits up to `timeout` for a record, then takes up to `drain` more that
  // are already fetched, handing each to `on_record`. An out-of-range fetch
  // position (Kafka stopped fetching the partition: auto.offset.reset is
  // "error") goes to `on_out_of_range` with the offset and Kafka's message.
  void Poll(
      std::chrono::milliseconds timeout, int drain,
      const std::function<void(d2c::KafkaRecord)>& on_record,
      const std::function<void(std::int32_t, std::int64_t, const std::string&)>& on_out_of_range);

  void Pause(std::int32_t partition);
  void Resume(std::int32_t partition);
  // Starts fetching `partition` at `offset` (absolute or logical): a seek,
  // else (not fetching yet) a re-assignment, in which every other assigned
  // partition is placed as `placement_of` says; then resumes it. False if
  // it could not.
  bool StartAt(std::int32_t partition, std::int64_t offset,
               const std::function<d2c::Placement(std::int32_t)>& placement_of);
  // Commits `next_offset` for `partition`, asynchronously (for lag tools).
  void Commit(std::int32_t partition, std::int64_t next_offset);

  // The partition's [low, high) watermarks as last fetched, without asking
  // Kafka; nullopt when not known.
  [[nodiscard]] std::optional<std::pair<std::int64_t, std::int64_t>> CachedWatermarks(
      std::int32_t partition);
  // The watermarks, asked of Kafka. Throws std::runtime_error.
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> QueryWatermarks(
      std::int32_t partition, std::chrono::milliseconds timeout);
  // The first offset at or after `timestamp_ms` (negative: none, the end).
  // Throws std::runtime_error.
  [[nodiscard]] std::int64_t OffsetForTime(std::int32_t partition, std::int64_t timestamp_ms,
                                           std::chrono::milliseconds timeout);

  // "EAGER", "COOPERATIVE" or "NONE" (not joined yet).
  [[nodiscard]] std::string RebalanceProtocol() const;

  // Leaves the group. A consumer never assigned anything first waits up to
  // `first_assignment` for its assignment (librdkafka 2.0.2 aborts when a
  // cooperative-sticky consumer that has joined is destroyed before it,
  // librdkafka#4312); still none, leaked() is true: the handle must then be
  // left to the process exit, with this object and the listener (its
  // threads may still call back).
  void Close(std::chrono::milliseconds first_assignment);
  [[nodiscard]] bool leaked() const { return leaked_; }

 private:
  struct Handle;
  std::unique_ptr<Handle> handle_;
  bool leaked_ = false;
};

}  // namespace ferry::kafka
