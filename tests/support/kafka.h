#pragma once

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
class TestProducer final {
 public:
  explicit TestProducer(const std::string& brokers);
  ~TestProducer();
  // Produces and waits until every record is acknowledged; throws otherwise.
  void Send(const std::string& topic, const std::vector<TestRecord>& records);

 private:
  std::unique_ptr<RdKafka::Producer> producer_;
};

}  // namespace ferry::testing
