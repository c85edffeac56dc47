#pragma once

#include <memory>
#include <string>

namespace ferry::kafka {

// librdkafka's mock cluster: real Kafka protocol on loopback, for
// development and tests only. It keeps at most 5 MiB and 100,000 messages per
// partition (oldest dropped) and cannot look offsets up by time. Thread-safe.
class MockCluster final {
 public:
  // Throws std::runtime_error if the cluster cannot start.
  explicit MockCluster(int brokers = 1);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  [[nodiscard]] std::string bootstrap() const;
  // Throws std::invalid_argument on a bad name or count.
  void CreateTopic(const std::string& name, int partitions);

  // One control command; returns a one-line reply ("ok ..."), throws
  // std::invalid_argument naming the usage on a bad command:
  //   topic NAME PARTITIONS      create a topic
  //   down BROKER | up BROKER    take a broker down or bring it back
  //   rtt BROKER MS              add round-trip delay to a broker
  //   errors APIKEY COUNT CODE   fail the next COUNT requests of APIKEY with CODE
  //   clear APIKEY               drop pending injected errors of APIKEY
  //   bootstrap                  print the bootstrap address
  std::string Command(const std::string& line);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::kafka
