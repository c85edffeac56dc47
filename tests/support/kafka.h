#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/kafka/mock_cluster.h"

namespace RdKafka {
class Producer;
}

namespace ferry::testing {

// Kafka options for tests: short group timers so joins and rebalances fit a
// test (joins on the mock broker still take seconds: wait on conditions).
[[nodiscard]] std::map<std::string, std::string> FastGroupTimers();

struct TestRecord {
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
  std::int32_t partition = -1;  // -1: the partitioner decides (murmur2_random)
  std::optional<std::int64_t> timestamp_ms;
};

// A producer for tests: idempotent, acks=all, Java-compatible partitioning.
// Send waits up to `timeout` for every acknowledgement (through broker
// faults on a real cluster, give it minutes).
class TestProducer final {
 public:
  explicit TestProducer(const std::string& brokers,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~TestProducer();
  // Produces and waits until every record is acknowledged; throws otherwise.
  void Send(const std::string& topic, const std::vector<TestRecord>& records);

 private:
  std::unique_ptr<RdKafka::Producer> producer_;
  std::chrono::milliseconds timeout_;
};

// Reads every record of `topic` (all `partitions`, from the beginning, no
// consumer group) until `expected` arrived and every partition is read to the
// end of its log as it stood then (so a late duplicate already written is
// never missed, however slow the machine), or `timeout` passed; then reads on
// for `settle` to catch any extra. Records of one partition stay in order.
[[nodiscard]] std::vector<TestRecord> ReadTopic(
    const std::string& brokers, const std::string& topic, int partitions, std::size_t expected,
    std::chrono::milliseconds timeout,
    std::chrono::milliseconds settle = std::chrono::milliseconds(500));

}  // namespace ferry::testing
