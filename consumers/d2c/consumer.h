#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <prometheus/registry.h>

#include "core/clock.h"
#include "store/d2c/event_store.h"

namespace ferry::d2c {

enum class StartFrom { kEarliest, kLatest, kTimestamp };

// Where a partition with no checkpoint starts. Resolving a timestamp needs
// the broker's time index (the mock broker has none), so it is an interface;
// tests pass a fake.
class StartOffsets {
 public:
  virtual ~StartOffsets() = default;
  // An absolute offset, or Kafka's logical -2 (earliest) / -1 (latest).
  [[nodiscard]] virtual std::int64_t Resolve(const std::string& topic, std::int32_t partition,
                                             StartFrom from, TimePoint at) = 0;
};

struct ConsumerOptions {
  std::string brokers;
  std::string topic = "ferry.d2c";
  std::string group = "ferry-d2c";
  std::string owner;  // this process, in d2c_checkpoints.owner
  // Kafka static membership (group.instance.id); empty: dynamic. A member
  // that restarts with the same id within the session timeout gets its
  // partitions back without a rebalance; one that stops is not replaced
  // before the session timeout either (static members do not leave).
  std::string instance_id;
  // Called once, on the poll thread, when the consumer hits a fatal Kafka
  // error (e.g. FENCED_INSTANCE_ID: another process took its instance id):
  // it can no longer consume, the process should restart.
  std::function<void(const std::string&)> on_fatal;
  StartFrom start_from = StartFrom::kEarliest;
  TimePoint start_time;
  std::size_t batch_max_records = 2000;
  std::size_t batch_max_bytes = 4 << 20;
  std::chrono::milliseconds linger{50};
  // Beyond this many fetched-but-unlanded records a partition is paused.
  std::size_t max_buffered_records = 20000;
  // The memory budget for D2C data fetched and not yet landed, over all
  // assigned partitions whatever their number: the records held here
  // (buffered, or in a batch being landed or retried, counted with their
  // allocation overhead) plus librdkafka's prefetch, which is sized from
  // it (queued.max.messages.kbytes and fetch.max.bytes a quarter each).
  // Half of it is for the records held here: past that, every partition
  // that receives more is paused until they halve (--d2c-buffer-mb).
  std::size_t max_buffered_bytes = 64 << 20;
  std::size_t landing_threads = 2;
  // librdkafka properties, passed through (security.protocol, sasl.*,
  // session.timeout.ms, ...).
  std::map<std::string, std::string> kafka;
};

// The d2c role: a consumer-group member that lands its partitions in the
// event store exactly once (docs/event-store.md, docs/reliability.md). A newly
// assigned partition stays paused until it is claimed in PostgreSQL (epoch
// bumped, off the poll thread, retried with backoff); it then resumes from
// the checkpoint. One landing transaction per partition batch moves the
// checkpoint only while the epoch is still ours; a fenced batch is dropped
// with everything fetched for its partition, which is claimed afresh.
// Revocation waits for the partition's in-flight batch. Kafka's committed
// offsets are written after landing, as information for lag tools.
class D2cConsumer final {
 public:
  D2cConsumer(ConsumerOptions options, EventStore& store, const Clock& clock,
              prometheus::Registry& registry, StartOffsets* start_offsets = nullptr);
  ~D2cConsumer();
  D2cConsumer(const D2cConsumer&) = delete;
  D2cConsumer& operator=(const D2cConsumer&) = delete;

  // Joins the group and starts polling. Throws std::runtime_error on a bad
  // Kafka configuration.
  void Start();
  // Lands what was fetched, leaves the group, stops. Idempotent.
  void Stop();

  // The group's rebalance protocol as librdkafka reports it once joined:
  // "EAGER" with Ferry's default assignor, "COOPERATIVE" with a sticky one,
  // "NONE" before the first join.
  [[nodiscard]] std::string rebalance_protocol() const;

  // For liveness (core/liveness.h): how long the poll loop has not gone
  // round, or the oldest landing job has waited for a thread, whichever is
  // longer; nullopt when not running.
  [[nodiscard]] std::optional<std::chrono::steady_clock::duration> Stalled() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::d2c
