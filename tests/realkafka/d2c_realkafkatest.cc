// D2C landing against a real Apache Kafka cluster (scripts/kafka): exactly
// once through broker and consumer faults, gaps recorded never skipped,
// start positions and replay by time on the real time index, and standard
// tooling agreeing with Ferry's checkpoints. Label `realkafka`.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "tests/support/ferryd.h"
#include "tests/support/kafka.h"
#include "tests/support/pg.h"
#include "tests/support/process.h"
#include "tests/support/real_kafka.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

// Group timers a test can wait out (brokers refuse sessions under 6 s).
std::map<std::string, std::string> D2cEnv() {
  return {{"FERRY_KAFKA_PROPERTIES",
           "session.timeout.ms=6000;heartbeat.interval.ms=500;max.poll.interval.ms=30000;"
           "topic.metadata.refresh.interval.ms=1000"}};
}

void Migrate(const testing::TestDatabase& db) {
  const auto m = testing::Run(testing::BinPath("ferryd"), {"--postgres-url", db.url(), "migrate"});
  ASSERT_EQ(m.exit_code, 0) << m.output;
}

std::unique_ptr<testing::FerrydProcess> StartLander(const testing::TestDatabase& db,
                                                    const std::string& brokers,
                                                    std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--roles",         "d2c", "--kafka-brokers", brokers,
                                   "--d2c-linger-ms", "20"};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<testing::FerrydProcess>(db.url(), args, D2cEnv());
}

// One Prometheus sample of ferryd's /metrics (`series` with its labels as
// printed), or -1 when absent.
double Metric(const testing::FerrydProcess& ferryd, const std::string& series) {
  const auto r = testing::Run(
      "/bin/bash",
      {"-c", "curl -sf http://127.0.0.1:" + std::to_string(ferryd.metrics_port()) + "/metrics"});
  std::istringstream in(r.output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

testing::TestRecord Record(long i, int devices,
                           std::optional<std::int64_t> timestamp_ms = std::nullopt,
                           int partition = -1) {
  testing::TestRecord r;
  r.key = "device-" + std::to_string(i % devices);
  r.value = std::to_string(i);
  r.headers = {{"message-id", "m-" + std::to_string(i)}};
  r.timestamp_ms = timestamp_ms;
  r.partition = partition;
  return r;
}

// Produces chunks of records (bodies 0, 1, 2, ...) until stopped; a send
// that is not acknowledged stops it with the error (the test then fails:
// the count of what was produced would be unknown).
class BackgroundProducer final {
 public:
  BackgroundProducer(const std::string& brokers, int devices) {
    thread_ = std::thread([this, brokers, devices] {
      try {
        testing::TestProducer p(brokers, 240s);
        while (!stop_) {
          std::vector<testing::TestRecord> records;
          for (long i = produced_; i < produced_ + 50; ++i) records.push_back(Record(i, devices));
          p.Send("ferry.d2c", records);
          produced_ += 50;
          std::this_thread::sleep_for(50ms);
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex_);
        error_ = e.what();
      }
    });
  }
  ~BackgroundProducer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long produced() const { return produced_; }
  std::string error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<long> produced_{0};
  mutable std::mutex mutex_;
  std::string error_;
  std::thread thread_;
};

// Every produced record landed once: exact count, distinct message ids,
// bodies 0..n-1, each device's events in the order produced, no dead letters.
void ExpectExactlyOnce(const testing::TestDatabase& db, long total) {
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_events"), total);
  EXPECT_EQ(db.Count("SELECT count(DISTINCT message_id) FROM d2c_events"), total);
  EXPECT_EQ(db.Count("SELECT coalesce(sum(convert_from(body, 'UTF8')::bigint), 0) FROM d2c_events"),
            total * (total - 1) / 2);
  EXPECT_EQ(db.Count("SELECT count(*) FROM (SELECT convert_from(body, 'UTF8')::bigint AS n,"
                     " lag(convert_from(body, 'UTF8')::bigint) OVER (PARTITION BY device_id"
                     " ORDER BY kafka_partition, kafka_offset) AS before FROM d2c_events) x"
                     " WHERE before > n"),
            0);
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_dead_letters"), 0);
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_gaps"), 0);
}

// Three brokers (RF 3, min ISR 2), two landing replicas, production
// throughout; one fault after another, each followed by landing moving on:
// a replica SIGKILLed, a partition leader SIGKILLed, the group coordinator
// SIGKILLed, a broker SIGTERMed, a broker SIGSTOPped past its session and
// resumed, the whole cluster restarted.
TEST(RealKafkaD2c, EveryEventLandsOnceThroughBrokerAndReplicaFaults) {
  testing::RealKafka kafka(3);
  testing::TestDatabase db;
  Migrate(db);
  std::vector<std::unique_ptr<testing::FerrydProcess>> replicas;
  replicas.push_back(StartLander(db, kafka.bootstrap()));
  replicas.push_back(StartLander(db, kafka.bootstrap()));
  BackgroundProducer producer(kafka.bootstrap(), 13);

  const auto landed = [&] { return db.Count("SELECT count(*) FROM d2c_events"); };
  // Landing moves on by at least 200 events after a fault (production runs
  // at a few hundred a second, whatever the machine).
  const auto moves_on = [&](const std::string& after) {
    const long before = landed();
    const auto started = std::chrono::steady_clock::now();
    ASSERT_TRUE(testing::WaitFor(
        [&] { return landed() >= before + 200 || !producer.error().empty(); }, 180s))
        << "landing stuck after " << after << " at " << landed() << "\n"
        << kafka.Logs() << "\n"
        << replicas[0]->process().Output() << replicas[1]->process().Output();
    ASSERT_EQ(producer.error(), "") << "after " << after;
    std::cout << "landing moved on "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - started)
                     .count()
              << " ms after " << after << " (" << landed() << " landed)" << std::endl;
  };
  moves_on("start");

  replicas[0]->process().Signal(SIGKILL);
  ASSERT_TRUE(replicas[0]->process().Wait(10s).has_value());
  replicas[0] = StartLander(db, kafka.bootstrap());
  moves_on("a replica SIGKILL");

  const int leader = kafka.KillLeader("ferry.d2c", 0);
  moves_on("SIGKILL of partition 0's leader (node " + std::to_string(leader) + ")");
  kafka.Restart(leader);

  const int coordinator = kafka.KillCoordinator("ferry-d2c");
  moves_on("SIGKILL of the group coordinator (node " + std::to_string(coordinator) + ")");
  kafka.Restart(coordinator);

  const int termed = kafka.Leader("ferry.d2c", 1);
  kafka.Term(termed);
  moves_on("SIGTERM of node " + std::to_string(termed));
  kafka.Restart(termed);

  // SIGSTOP past the broker session (9 s): the controller fences it and its
  // partitions get new leaders; then it comes back.
  const int paused = kafka.Leader("ferry.d2c", 2);
  kafka.Pause(paused);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        try {
          return kafka.Leader("ferry.d2c", 2) != paused;
        } catch (const std::exception&) {
          return false;
        }
      },
      120s))
      << kafka.Logs();
  moves_on("SIGSTOP of node " + std::to_string(paused));
  kafka.Resume(paused);
  kafka.WaitReady();

  kafka.RestartAll();
  moves_on("a whole-cluster restart");

  producer.Stop();
  ASSERT_EQ(producer.error(), "");
  const long total = producer.produced();
  ASSERT_TRUE(testing::WaitFor([&] { return landed() >= total; }, 180s))
      << landed() << " of " << total << " landed\n"
      << replicas[0]->process().Output() << replicas[1]->process().Output();
  std::this_thread::sleep_for(2s);  // a late duplicate would show by now
  ExpectExactlyOnce(db, total);
  for (auto& r : replicas) {
    r->process().Signal(SIGTERM);
    EXPECT_EQ(r->process().Wait(60s).value_or(-1), 0) << r->process().Output();
  }
}

// Records deleted under a stalled checkpoint (DeleteRecords, as retention
// would) are a gap: recorded (row, counter, checkpoint column) in the
// transaction that moves the checkpoint, never a silent jump. A checkpoint
// above the log's end (the topic deleted and re-created) stops the
// partition until an operator resets it.
TEST(RealKafkaD2c, DeletedRecordsAreARecordedGapAndARecreatedTopicStops) {
  testing::RealKafka kafka(1, {"ferry.d2c:1"});
  testing::TestDatabase db;
  Migrate(db);
  testing::TestProducer producer(kafka.bootstrap());
  std::vector<testing::TestRecord> first;
  for (long i = 0; i < 10; ++i) first.push_back(Record(i, 3));
  producer.Send("ferry.d2c", first);
  {
    auto ferryd = StartLander(db, kafka.bootstrap());
    ASSERT_TRUE(
        testing::WaitFor([&] { return db.Count("SELECT count(*) FROM d2c_events") == 10; }, 60s))
        << ferryd->process().Output();
    ferryd->process().Signal(SIGTERM);
    ASSERT_EQ(ferryd->process().Wait(60s).value_or(-1), 0) << ferryd->process().Output();
  }
  // While nothing lands: 20 more, and the log start moves to 25.
  std::vector<testing::TestRecord> second;
  for (long i = 10; i < 30; ++i) second.push_back(Record(i, 3));
  producer.Send("ferry.d2c", second);
  kafka.DeleteRecords("ferry.d2c", 0, 25);

  auto ferryd = StartLander(db, kafka.bootstrap());
  ASSERT_TRUE(
      testing::WaitFor([&] { return db.Count("SELECT count(*) FROM d2c_events") == 15; }, 60s))
      << ferryd->process().Output();
  EXPECT_EQ(
      db.Count(
          "SELECT count(*) FROM d2c_gaps WHERE consumer_group = 'ferry-d2c' AND topic = 'ferry.d2c'"
          " AND kafka_partition = 0 AND from_offset = 10 AND to_offset = 25"),
      1);
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_gaps"), 1);
  EXPECT_EQ(db.Count("SELECT lost FROM d2c_checkpoints"), 15);
  EXPECT_EQ(db.Count("SELECT next_offset FROM d2c_checkpoints"), 30);
  // Nothing from the deleted range, everything after it, once.
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_events WHERE kafka_offset BETWEEN 10 AND 24"), 0);
  EXPECT_EQ(
      db.Count("SELECT count(DISTINCT kafka_offset) FROM d2c_events WHERE kafka_offset >= 25"), 5);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Metric(*ferryd, "ferry_d2c_lost_records_total{partition=\"0\"}") == 15; }, 10s))
      << ferryd->process().Output();
  EXPECT_NE(ferryd->process().Output().find("data loss"), std::string::npos);
  ferryd->process().Signal(SIGTERM);
  ASSERT_EQ(ferryd->process().Wait(60s).value_or(-1), 0) << ferryd->process().Output();

  // The topic deleted and re-created: its log ends below the checkpoint (30).
  kafka.Do("delete-topic", {"ferry.d2c"});
  kafka.Do("create-topic", {"ferry.d2c", "1"});
  std::vector<testing::TestRecord> fresh;
  for (long i = 100; i < 103; ++i) fresh.push_back(Record(i, 3));
  producer.Send("ferry.d2c", fresh);
  auto api = std::make_unique<testing::FerrydProcess>(
      db.url(),
      std::vector<std::string>{"--roles", "d2c,api", "--kafka-brokers", kafka.bootstrap()},
      D2cEnv());
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Metric(*api, "ferry_d2c_partition_stopped{partition=\"0\"}") == 1; }, 60s))
      << api->process().Output();
  EXPECT_NE(api->process().Output().find("partition stopped"), std::string::npos);
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_events"), 15);
  EXPECT_EQ(db.Count("SELECT next_offset FROM d2c_checkpoints"), 30);
  const auto env = api->CtlEnv();
  const auto listed_now =
      testing::Run(testing::BinPath("ferryctl"), {"checkpoints", "list"}, 30s, env);
  EXPECT_NE(listed_now.output.find("LOST"), std::string::npos) << listed_now.output;
  // The operator resets it to the new log's start: it lands again.
  const auto reset =
      testing::Run(testing::BinPath("ferryctl"),
                   {"checkpoints", "reset", "--partition", "0", "--offset", "0"}, 30s, env);
  ASSERT_EQ(reset.exit_code, 0) << reset.output;
  ASSERT_TRUE(testing::WaitFor(
      [&] { return db.Count("SELECT next_offset FROM d2c_checkpoints") == 3; }, 60s))
      << api->process().Output();
  EXPECT_TRUE(testing::WaitFor(
      [&] { return Metric(*api, "ferry_d2c_partition_stopped{partition=\"0\"}") == 0; }, 30s));
}

// Start positions and replay by time on the broker's real time index: a
// partition without a checkpoint starts at the first record at or after
// --d2c-start; `ferryctl checkpoints reset --time` then lands the earlier
// ones, each record once.
TEST(RealKafkaD2c, StartAndReplayByTimeUseTheTimeIndex) {
  testing::RealKafka kafka(1, {"ferry.d2c:2"});
  testing::TestDatabase db;
  Migrate(db);
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const std::int64_t hour_ms = 3600 * 1000;
  // 3 hours ago, 2 hours ago, 1 hour ago: 10 records each on both partitions.
  testing::TestProducer producer(kafka.bootstrap());
  std::vector<testing::TestRecord> records;
  for (long i = 0; i < 60; ++i) {
    records.push_back(Record(i, 5, now_ms - (3 - i / 20) * hour_ms + i, static_cast<int>(i % 2)));
  }
  producer.Send("ferry.d2c", records);
  const auto rfc3339 = [](std::int64_t ms) {
    const std::time_t t = ms / 1000;
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return std::string(buf);
  };
  // Start at 2.5 hours ago: the last 40 records.
  auto ferryd = std::make_unique<testing::FerrydProcess>(
      db.url(),
      std::vector<std::string>{"--migrate", "--roles", "d2c,api", "--kafka-brokers",
                               kafka.bootstrap(), "--d2c-start", rfc3339(now_ms - 5 * hour_ms / 2)},
      D2cEnv());
  ASSERT_TRUE(
      testing::WaitFor([&] { return db.Count("SELECT count(*) FROM d2c_events") >= 40; }, 60s))
      << ferryd->process().Output();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return db.Count("SELECT coalesce(sum(next_offset), 0) FROM d2c_checkpoints") == 60; },
      30s));
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_events"), 40);
  EXPECT_EQ(db.Count("SELECT min(convert_from(body, 'UTF8')::bigint) FROM d2c_events"), 20);

  // Replay from 3.5 hours ago: the first 20 land, the 40 already there are skipped.
  const auto reset = testing::Run(
      testing::BinPath("ferryctl"),
      {"checkpoints", "reset", "--time", rfc3339(now_ms - 7 * hour_ms / 2)}, 30s, ferryd->CtlEnv());
  ASSERT_EQ(reset.exit_code, 0) << reset.output;
  ASSERT_TRUE(
      testing::WaitFor([&] { return db.Count("SELECT count(*) FROM d2c_events") >= 60; }, 60s))
      << ferryd->process().Output();
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return db.Count("SELECT coalesce(sum(replay_skipped), 0) FROM d2c_checkpoints") == 40;
      },
      30s))
      << ferryd->process().Output();
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_events"), 60);
  EXPECT_EQ(db.Count("SELECT count(DISTINCT message_id) FROM d2c_events"), 60);
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_gaps"), 0);
}

// ConsumerGroupCommand, the standard tool, shows committed offsets equal to
// Ferry's checkpoints once landed, and its lag equal to Ferry's lag metric,
// both while landing is held up (a lock on the checkpoints) and after.
TEST(RealKafkaD2c, ConsumerGroupCommandAgreesWithTheCheckpointsAndLag) {
  testing::RealKafka kafka(1, {"ferry.d2c:3"});
  testing::TestDatabase db;
  Migrate(db);
  testing::TestProducer producer(kafka.bootstrap());
  std::vector<testing::TestRecord> records;
  for (long i = 0; i < 90; ++i) records.push_back(Record(i, 7));
  producer.Send("ferry.d2c", records);
  auto ferryd = StartLander(db, kafka.bootstrap());
  ASSERT_TRUE(
      testing::WaitFor([&] { return db.Count("SELECT count(*) FROM d2c_events") == 90; }, 60s))
      << ferryd->process().Output();

  // partition -> (current offset, lag), from "GROUP TOPIC PARTITION
  // CURRENT-OFFSET LOG-END-OFFSET LAG ..." rows.
  const auto describe = [&] {
    std::map<int, std::pair<long, long>> out;
    std::istringstream in(kafka.Do("describe-group", {"ferry-d2c"}));
    std::string line;
    const std::regex row(
        "^ferry-d2c\\s+ferry\\.d2c\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)(\\s.*)?$");
    std::smatch m;
    while (std::getline(in, line)) {
      if (std::regex_match(line, m, row)) out[std::stoi(m[1])] = {std::stol(m[2]), std::stol(m[4])};
    }
    return out;
  };
  // Both tools agree, partition by partition, and the lags add up to `lag`.
  const auto agree = [&](long lag) {
    const auto described = describe();
    if (described.size() != 3) return false;
    long total = 0;
    for (const auto& [p, v] : described) {
      const std::string P = std::to_string(p);
      if (v.first !=
              db.Count("SELECT next_offset FROM d2c_checkpoints WHERE kafka_partition = " + P) ||
          Metric(*ferryd, "ferry_d2c_lag_records{partition=\"" + P + "\"}") !=
              static_cast<double>(v.second)) {
        return false;
      }
      total += v.second;
    }
    return total == lag;
  };
  ASSERT_TRUE(testing::WaitFor([&] { return agree(0); }, 60s))
      << kafka.Do("describe-group", {"ferry-d2c"});

  // Landing held up: 30 more wait behind a lock on every checkpoint row.
  pqxx::connection conn(db.url());
  pqxx::work hold(conn);
  hold.exec("SELECT * FROM d2c_checkpoints FOR UPDATE");
  std::vector<testing::TestRecord> more;
  for (long i = 90; i < 120; ++i) more.push_back(Record(i, 7));
  producer.Send("ferry.d2c", more);
  EXPECT_TRUE(testing::WaitFor([&] { return agree(30); }, 60s))
      << kafka.Do("describe-group", {"ferry-d2c"});
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_events"), 90);
  hold.abort();
  ASSERT_TRUE(
      testing::WaitFor([&] { return db.Count("SELECT count(*) FROM d2c_events") == 120; }, 60s))
      << ferryd->process().Output();
  EXPECT_TRUE(testing::WaitFor([&] { return agree(0); }, 60s))
      << kafka.Do("describe-group", {"ferry-d2c"});
}

// Recovery with the defaults (no timer properties): static membership
// (--d2c-instance-id) gives a replica restarted under the same id its
// partitions back without moving the other replica's; a replica that
// crashes for good has its partitions land elsewhere once its session
// (10 s by default) expires. Both recovery times are printed.
TEST(RealKafkaD2c, ARestartedReplicaKeepsItsPartitionsACrashedOnesMoveOn) {
  testing::RealKafka kafka(1, {"ferry.d2c:4"});
  testing::TestDatabase db;
  Migrate(db);
  const auto lander = [&](const std::string& id) {
    return std::make_unique<testing::FerrydProcess>(
        db.url(), std::vector<std::string>{"--roles", "d2c", "--kafka-brokers", kafka.bootstrap(),
                                           "--d2c-linger-ms", "20", "--d2c-instance-id", id});
  };
  const auto owned = [&](const testing::FerrydProcess& f) {
    std::set<int> out;
    for (int p = 0; p < 4; ++p) {
      if (Metric(f, "ferry_d2c_partition_owned{partition=\"" + std::to_string(p) + "\"}") == 1)
        out.insert(p);
    }
    return out;
  };
  const auto checkpoints = [&] {
    std::map<int, long> out;
    for (int p = 0; p < 4; ++p) {
      out[p] = db.Count(
          "SELECT coalesce(max(next_offset), 0) FROM d2c_checkpoints WHERE kafka_partition = " +
          std::to_string(p));
    }
    return out;
  };
  // Every partition's checkpoint moved past where it was at `before`.
  const auto all_moved_on = [&](const std::map<int, long>& before) {
    const auto now = checkpoints();
    for (const auto& [p, o] : before) {
      if (now.at(p) <= o) return false;
    }
    return true;
  };
  auto a = lander("ferry-d2c-a");
  auto b = lander("ferry-d2c-b");
  BackgroundProducer producer(kafka.bootstrap(), 40);  // keys on every partition
  ASSERT_TRUE(
      testing::WaitFor([&] { return owned(*a).size() == 2 && owned(*b).size() == 2; }, 120s))
      << a->process().Output() << b->process().Output();
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return all_moved_on({{0, 0}, {1, 0}, {2, 0}, {3, 0}});
      },
      60s));
  const auto b_partitions = owned(*b);
  const double b_assigns = Metric(*b, "ferry_d2c_rebalances_total{kind=\"assign\"}");

  // A crashes and its container restarts at once, same instance id.
  a->process().Signal(SIGKILL);
  ASSERT_TRUE(a->process().Wait(10s).has_value());
  auto before = checkpoints();
  auto started = std::chrono::steady_clock::now();
  a = lander("ferry-d2c-a");
  ASSERT_TRUE(testing::WaitFor([&] { return all_moved_on(before); }, 120s))
      << a->process().Output();
  const auto restart_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - started)
                              .count();
  EXPECT_EQ(owned(*b), b_partitions);
  EXPECT_EQ(Metric(*b, "ferry_d2c_rebalances_total{kind=\"assign\"}"), b_assigns)
      << "the other replica saw a rebalance";
  EXPECT_EQ(owned(*a).size(), 2u);

  // A crashes for good: B takes all four once A's session expires.
  a->process().Signal(SIGKILL);
  ASSERT_TRUE(a->process().Wait(10s).has_value());
  before = checkpoints();
  started = std::chrono::steady_clock::now();
  ASSERT_TRUE(testing::WaitFor([&] { return all_moved_on(before); }, 120s))
      << b->process().Output();
  const auto crash_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count();
  EXPECT_EQ(owned(*b).size(), 4u);
  std::cout << "recovery with the defaults: every partition landing again " << restart_ms
            << " ms after a replica's restart under its instance id (no rebalance), " << crash_ms
            << " ms after a crash without restart" << std::endl;

  producer.Stop();
  ASSERT_EQ(producer.error(), "");
  const long total = producer.produced();
  ASSERT_TRUE(
      testing::WaitFor([&] { return db.Count("SELECT count(*) FROM d2c_events") >= total; }, 120s));
  ExpectExactlyOnce(db, total);
}

// AddressSanitizer's shadow memory, redzones and quarantine (freed blocks
// held back, up to 256 MiB) make a sanitized ferryd's resident memory no
// measure of Ferry's own: there the budget is checked through
// ferry_d2c_buffered_bytes alone, and the resident bound by an
// uninstrumented build (scripts/test --no-sanitize) and by the bench's
// memory figures (scripts/bench, BENCHMARKS.md).
#if defined(FERRY_SANITIZED)
constexpr bool kResidentMemoryIsFerrys = false;
#else
constexpr bool kResidentMemoryIsFerrys = true;
#endif

long RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Memory is bounded by the budget, not by how fast this machine lands:
// landing is held up (a lock on every checkpoint row) while a backlog
// several times the budget arrives on 16 partitions; what ferryd holds
// stops at the budget and its resident memory stays under 128 MiB. Then
// everything lands once.
TEST(RealKafkaD2c, FetchedDataStaysWithinTheBudgetWhileLandingIsHeldUp) {
  testing::RealKafka kafka(1, {"ferry.d2c:16"});
  testing::TestDatabase db;
  Migrate(db);
  testing::TestProducer producer(kafka.bootstrap(), 120s);
  const auto records = [](long from, long n) {
    std::vector<testing::TestRecord> out;
    for (long i = from; i < from + n; ++i) {
      testing::TestRecord r = Record(i, 1000, std::nullopt, static_cast<int>(i % 16));
      r.headers.emplace_back("padding", std::string(600, 'x'));
      out.push_back(std::move(r));
    }
    return out;
  };
  producer.Send("ferry.d2c", records(0, 160));
  // The default budget, 64 MiB; a sanitized ferryd (no resident bound
  // checked, landing several times slower) is given half, and half the
  // backlog, so the test takes half as long there.
  const int budget_mib = kResidentMemoryIsFerrys ? 64 : 32;
  auto ferryd = StartLander(db, kafka.bootstrap(), {"--d2c-buffer-mb", std::to_string(budget_mib)});
  ASSERT_TRUE(
      testing::WaitFor([&] { return db.Count("SELECT count(*) FROM d2c_events") == 160; }, 60s))
      << ferryd->process().Output();
  const double budget = static_cast<double>(budget_mib) * (1 << 20);

  pqxx::connection conn(db.url());
  pqxx::work hold(conn);
  hold.exec("SELECT * FROM d2c_checkpoints FOR UPDATE");
  // About 180 MB of records (90 MB sanitized), nearly three times the budget.
  const long backlog = kResidentMemoryIsFerrys ? 200000 : 100000;
  for (long i = 160; i < 160 + backlog; i += 20000) producer.Send("ferry.d2c", records(i, 20000));
  // Fetching fills up to the budget and stops there.
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Metric(*ferryd, "ferry_d2c_buffered_bytes") >= budget / 2; }, 120s))
      << Metric(*ferryd, "ferry_d2c_buffered_bytes");
  long peak_kib = 0;
  double peak_buffered = 0;
  for (int i = 0; i < 30; ++i) {
    peak_kib = std::max(peak_kib, RssKib(ferryd->process().pid()));
    peak_buffered = std::max(peak_buffered, Metric(*ferryd, "ferry_d2c_buffered_bytes"));
    std::this_thread::sleep_for(200ms);
  }
  std::cout << "landing held up with a " << backlog << "-record backlog: buffered peak "
            << peak_buffered / (1 << 20) << " MiB of the " << budget_mib << " MiB budget, RSS peak "
            << peak_kib / 1024 << " MiB" << std::endl;
  EXPECT_LE(peak_buffered, budget);
  if (kResidentMemoryIsFerrys) {
    EXPECT_LT(peak_kib, 128 * 1024);
  }
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_events"), 160);

  hold.abort();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return db.Count("SELECT count(*) FROM d2c_events") == 160 + backlog; }, 300s))
      << db.Count("SELECT count(*) FROM d2c_events") << "\n"
      << ferryd->process().Output();
  EXPECT_EQ(db.Count("SELECT count(DISTINCT message_id) FROM d2c_events"), 160 + backlog);
  EXPECT_EQ(db.Count("SELECT count(*) FROM d2c_dead_letters"), 0);
}

}  // namespace
}  // namespace ferry
