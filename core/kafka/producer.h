#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/registry.h>

#include "core/d2c/record.h"

namespace ferry::kafka {

struct ProduceResult {
  enum class Status { kAcknowledged, kFailed, kTimedOut };
  Status status = Status::kFailed;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::string error;
};

using OutgoingRecord = d2c::OutgoingRecord;

// An idempotent Kafka producer (acks=all, Java-compatible murmur2_random
// partitioning) whose every send completes exactly once: acknowledged,
// failed, or timed out at its deadline (the record may still be delivered
// after that). A fatal producer error recreates the producer; sends in flight
// then fail. Thread-safe. Metrics: ferry_kafka_produced_total{result}.
class Producer final {
 public:
  // Throws std::runtime_error on a bad configuration.
  Producer(std::string brokers, std::map<std::string, std::string> properties,
           prometheus::Registry& registry);
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // `done` runs once: on the producer's thread, or on the caller's for an
  // error found at once. Returns false (and does not call `done`) when the
  // local queue is full.
  // Whether a broker answers a metadata request within `timeout`.
  [[nodiscard]] bool Reachable(std::chrono::milliseconds timeout);

  // Low and high watermarks of a partition; nullopt when Kafka does not
  // answer within `timeout`.
  [[nodiscard]] std::optional<std::pair<std::int64_t, std::int64_t>> Watermarks(
      const std::string& topic, std::int32_t partition, std::chrono::milliseconds timeout);
  // The first offset whose timestamp is at or after `timestamp_ms` (-1: none
  // yet, i.e. the end); nullopt on error.
  [[nodiscard]] std::optional<std::int64_t> OffsetForTime(const std::string& topic,
                                                          std::int32_t partition,
                                                          std::int64_t timestamp_ms,
                                                          std::chrono::milliseconds timeout);

  // Checks that every partition of `topic` has at least the topic's
  // min.insync.replicas in sync (acks=all needs them); remembers the
  // answer for Refusal. Returns "" when they do (or Kafka does not answer:
  // Reachable says so), else why not, naming the partitions.
  std::string CheckReplicas(const std::string& topic, std::chrono::milliseconds timeout);
  // Why a record with `key` would be refused for too few in-sync replicas
  // on its partition (murmur2, as the producer partitions), as of the last
  // CheckReplicas of `topic`; "" when it would not (or nothing is known).
  [[nodiscard]] std::string Refusal(const std::string& topic, const std::string& key) const;

  [[nodiscard]] bool Send(const OutgoingRecord& record,
                          std::chrono::steady_clock::time_point deadline,
                          std::function<void(const ProduceResult&)> done);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::kafka
