#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace ferry::testing {

// A real Apache Kafka cluster (KRaft, 1 or 3 combined nodes on loopback)
// started with scripts/kafka in a folder of its own, for the `realkafka`
// tests: the constructor returns once every broker serves and every topic
// partition has a leader; the destructor stops the nodes and removes the
// folder. Topics are "NAME:PARTITIONS" (replication 3 and
// min.insync.replicas 2 on three nodes). The version is 4.1.1, or
// FERRY_TEST_KAFKA_VERSION (3.9.1 for the second leg). The class path must
// be resolved already (`scripts/kafka setup`, which scripts/test runs).
class RealKafka final {
 public:
  explicit RealKafka(int nodes, const std::vector<std::string>& topics = {"ferry.d2c:4"});
  ~RealKafka();
  RealKafka(const RealKafka&) = delete;
  RealKafka& operator=(const RealKafka&) = delete;

  [[nodiscard]] const std::string& bootstrap() const { return bootstrap_; }
  [[nodiscard]] const std::string& dir() const { return dir_; }

  // `scripts/kafka VERB DIR ARGS...`; returns its stdout and stderr, throws
  // with them if it fails.
  std::string Do(const std::string& verb, const std::vector<std::string>& args = {},
                 std::chrono::seconds timeout = std::chrono::seconds(240));
  // Node ids printed by the leader/kill-leader/kill-coordinator verbs.
  int Leader(const std::string& topic, int partition);
  int KillLeader(const std::string& topic, int partition);
  int KillCoordinator(const std::string& group);
  void Kill(int node) { Do("kill", {std::to_string(node)}); }
  void Term(int node) { Do("term", {std::to_string(node)}); }
  void Pause(int node) { Do("pause", {std::to_string(node)}); }
  void Resume(int node) { Do("resume", {std::to_string(node)}); }
  void Restart(int node) { Do("restart", {std::to_string(node)}); }
  void WaitReady() { Do("wait-ready"); }
  // Every node stopped, then started again on the same data.
  void RestartAll();
  void DeleteRecords(const std::string& topic, int partition, long long before) {
    Do("delete-records", {topic, std::to_string(partition), std::to_string(before)});
  }
  // The last lines of every node's log, for failure messages.
  [[nodiscard]] std::string Logs() const;

 private:
  std::string dir_;
  std::string bootstrap_;
  // A scripts/kafka call failed: the logs are kept (an exception out of a
  // test body is recorded as its failure only after this is destroyed).
  bool failed_ = false;
  std::vector<std::string> topics_;
};

}  // namespace ferry::testing
