#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <sys/socket.h>
#include <sys/un.h>

#include "tests/support/ferryd.h"
#include "tests/support/kafka.h"
#include "tests/support/pg.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

// The development Kafka as its own process, as scripts/run starts it.
class DevKafka final {
 public:
  DevKafka()
      : socket_path_("/tmp/ferry-devkafka-" + std::to_string(getpid()) + "-" +
                     std::to_string(std::random_device{}()) + ".sock"),
        process_(testing::BinPath("devkafka"),
                 {"--topic", "ferry.d2c:8", "--control-socket", socket_path_}) {
    const auto b = process_.WaitForLine(std::regex("^(127\\.0\\.0\\.1:\\d+)$"), 10s);
    if (!b) throw std::runtime_error("devkafka did not start: " + process_.Output());
    bootstrap_ = *b;
  }
  const std::string& bootstrap() const { return bootstrap_; }

  // One control command over the Unix socket; returns the reply line.
  std::string Command(const std::string& line) {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path_.c_str(), sizeof addr.sun_path - 1);
    for (int i = 0; i < 100 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0;
         ++i) {
      std::this_thread::sleep_for(20ms);
    }
    const std::string out = line + "\n";
    if (write(fd, out.data(), out.size()) < 0) return "error: write";
    std::string reply;
    char c;
    while (read(fd, &c, 1) == 1 && c != '\n') reply += c;
    close(fd);
    return reply;
  }

 private:
  std::string socket_path_;
  testing::ChildProcess process_;
  std::string bootstrap_;
};

long Count(const std::string& url, const std::string& sql) {
  pqxx::connection conn(url);
  pqxx::nontransaction tx(conn);
  return tx.exec(sql)[0][0].as<long>();
}

std::map<std::string, std::string> D2cEnv() {
  return {{"FERRY_KAFKA_PROPERTIES",
           "session.timeout.ms=6000;heartbeat.interval.ms=500;max.poll.interval.ms=7000"}};
}

TEST(D2c, RecordsProducedWithKcatLand) {
  DevKafka kafka;
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate", "--kafka-brokers", kafka.bootstrap()},
                                D2cEnv());
  const auto sent = testing::Run(
      "/bin/bash",
      {"-c", "printf '%s\\n' '{\"temp\":21.5}' '{\"temp\":22.0}' | kcat -P -b " +
                 kafka.bootstrap() +
                 " -t ferry.d2c -X partitioner=murmur2_random -k thermostat-7"
                 " -H message-id=m1 -H content-type=application/json -H content-encoding=utf-8"
                 " -H alert=false"});
  ASSERT_EQ(sent.exit_code, 0) << sent.output;
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Count(db.url(), "SELECT count(*) FROM d2c_events") >= 2; }, 60s))
      << ferryd.process().Output();
  EXPECT_EQ(Count(db.url(),
                  "SELECT count(*) FROM d2c_events WHERE device_id = 'thermostat-7'"
                  " AND message_id = 'm1' AND content_type = 'application/json'"
                  " AND application_properties->>'alert' = 'false'"),
            2);
}

TEST(D2c, ReadinessFollowsKafkaDownAndBack) {
  DevKafka kafka;
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate", "--kafka-brokers", kafka.bootstrap()},
                                D2cEnv());
  auto channel = ferryd.Channel();
  ASSERT_TRUE(
      testing::WaitFor([&] { return testing::HealthStatus(channel, "") == "SERVING"; }, 20s))
      << ferryd.process().Output();
  EXPECT_EQ(kafka.Command("down 1"), "ok down 1");
  EXPECT_TRUE(
      testing::WaitFor([&] { return testing::HealthStatus(channel, "") == "NOT_SERVING"; }, 20s))
      << ferryd.process().Output();
  EXPECT_EQ(testing::HealthStatus(channel, "liveness"), "SERVING");
  EXPECT_EQ(kafka.Command("up 1"), "ok up 1");
  EXPECT_TRUE(
      testing::WaitFor([&] { return testing::HealthStatus(channel, "") == "SERVING"; }, 30s))
      << ferryd.process().Output();
  EXPECT_NE(ferryd.process().Output().find("Kafka unreachable"), std::string::npos);
}

TEST(D2c, EveryEventLandsExactlyOnceAcrossRepeatedSigkills) {
  DevKafka kafka;
  testing::TestDatabase db;
  {
    // Migrate once up front; the killed instances then start straight away.
    const auto m =
        testing::Run(testing::BinPath("ferryd"), {"--postgres-url", db.url(), "migrate"});
    ASSERT_EQ(m.exit_code, 0) << m.output;
  }
  // Production runs through every kill and restart.
  constexpr int kChunk = 100;
  std::atomic<bool> stop{false};
  std::atomic<long> produced{0};
  std::thread producer([&] {
    testing::TestProducer p(kafka.bootstrap());
    while (!stop) {
      std::vector<testing::TestRecord> records;
      for (long i = produced; i < produced + kChunk; ++i) {
        testing::TestRecord r;
        r.key = "device-" + std::to_string(i % 97);
        r.value = std::to_string(i);
        r.headers = {{"message-id", "m-" + std::to_string(i)}};
        records.push_back(std::move(r));
      }
      p.Send("ferry.d2c", records);
      produced += kChunk;
      std::this_thread::sleep_for(100ms);
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join{stop, producer};

  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pause_ms(300, 2500);
  long last = 0;
  for (int kill = 0; kill < 5; ++kill) {
    testing::FerrydProcess ferryd(
        db.url(), {"--roles", "d2c", "--kafka-brokers", kafka.bootstrap(), "--d2c-linger-ms", "20"},
        D2cEnv());
    // Kill only once it has landed something, at a random moment after.
    ASSERT_TRUE(testing::WaitFor(
        [&] { return Count(db.url(), "SELECT count(*) FROM d2c_events") > last; }, 60s))
        << "seed " << seed << "\n"
        << ferryd.process().Output();
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    ferryd.process().Signal(SIGKILL);
    ASSERT_TRUE(ferryd.process().Wait(10s).has_value());
    last = Count(db.url(), "SELECT count(*) FROM d2c_events");
  }
  stop = true;
  producer.join();
  const long total = produced;
  testing::FerrydProcess survivor(
      db.url(), {"--roles", "d2c", "--kafka-brokers", kafka.bootstrap()}, D2cEnv());
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Count(db.url(), "SELECT count(*) FROM d2c_events") >= total; }, 90s))
      << "seed " << seed << ": " << Count(db.url(), "SELECT count(*) FROM d2c_events") << " of "
      << total;
  EXPECT_EQ(Count(db.url(), "SELECT count(*) FROM d2c_events"), total) << "seed " << seed;
  EXPECT_EQ(Count(db.url(), "SELECT count(DISTINCT message_id) FROM d2c_events"), total);
  EXPECT_EQ(Count(db.url(), "SELECT sum(convert_from(body, 'UTF8')::bigint) FROM d2c_events"),
            total * (total - 1) / 2);
  EXPECT_EQ(Count(db.url(), "SELECT count(*) FROM d2c_dead_letters"), 0);
  survivor.process().Signal(SIGTERM);
  EXPECT_EQ(survivor.process().Wait(30s).value_or(-1), 0);
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

testing::RunResult Ctl(const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env) {
  return testing::Run(testing::BinPath("ferryctl"), args, 30s, env);
}

testing::RunResult Kcat(const std::string& brokers, const std::string& body,
                        const std::string& headers) {
  return testing::Run("/bin/bash",
                      {"-c", "printf '%s\\n' '" + body + "' | kcat -P -b " + brokers +
                                 " -t ferry.d2c -X partitioner=murmur2_random -k thermostat-7"
                                 " -H content-type=application/json -H content-encoding=utf-8 " +
                                 headers});
}

// The README's routing walk-through, command by command: a Kafka endpoint
// and a route, tested, events tailed and read, the endpoint read with kcat,
// a partition replayed, a dead letter listed and re-driven.
TEST(D2c, ReadmeRoutingWalkThrough) {
  DevKafka kafka;
  kafka.Command("topic ferry.alerts 2");
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate", "--kafka-brokers", kafka.bootstrap()},
                                D2cEnv());
  const auto env = ferryd.CtlEnv();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 30s))
      << ferryd.process().Output();
  ASSERT_EQ(Ctl({"endpoints", "create", "alerts", "--kafka-topic", "ferry.alerts"}, env).exit_code,
            0);
  const auto route = Ctl(
      {"routes", "create", "hot", "--endpoint", "alerts", "--condition", "$body.temp > 30"}, env);
  ASSERT_EQ(route.exit_code, 0) << route.output;
  ASSERT_EQ(
      Ctl({"enrichments", "set", "site", "plant-7", "--endpoints", "alerts,events"}, env).exit_code,
      0);
  const auto tested =
      Ctl({"routes", "test", "--body", "{\"temp\":31}", "--content-type", "application/json"}, env);
  EXPECT_NE(tested.output.find("endpoints: alerts"), std::string::npos) << tested.output;

  // A tail that stops after the first event; then three events, one cold.
  auto tail_env = env;
  testing::ChildProcess tail(testing::BinPath("ferryctl"), {"events", "tail", "--count", "1"},
                             tail_env);
  // It follows from "now": produce once the stream is open.
  ASSERT_TRUE(ferryd.process().WaitForLine(std::regex("tail stream opened"), 20s).has_value())
      << tail.Output();
  ASSERT_EQ(Kcat(kafka.bootstrap(), "{\"temp\":21}", "-H message-id=cold-1").exit_code, 0);
  ASSERT_EQ(Kcat(kafka.bootstrap(), "{\"temp\":31}", "-H message-id=hot-1").exit_code, 0);
  ASSERT_EQ(Kcat(kafka.bootstrap(), "{\"temp\":35}", "-H message-id=hot-2").exit_code, 0);
  EXPECT_TRUE(tail.WaitForLine(std::regex("thermostat-7 .* cold-1 "), 60s).has_value())
      << tail.Output();
  EXPECT_EQ(tail.Wait(10s), 0);

  // The store kept the cold one (fallback), enriched; Kafka got the hot ones
  // (once all three are landed: the tail shows only the cold one).
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Count(db.url(), "SELECT coalesce(sum(next_offset), 0) FROM d2c_checkpoints") >= 3;
      },
      30s));
  const auto read = Ctl({"--json", "events", "read", "--device", "thermostat-7"}, env);
  ASSERT_EQ(read.exit_code, 0) << read.output;
  EXPECT_NE(read.output.find("\"message_id\":\"cold-1\""), std::string::npos) << read.output;
  EXPECT_NE(read.output.find("\"site\":\"plant-7\""), std::string::npos) << read.output;
  EXPECT_EQ(read.output.find("hot-1"), std::string::npos) << read.output;
  const auto alerts = testing::Run("/bin/bash", {"-c", "kcat -C -b " + kafka.bootstrap() +
                                                           " -t ferry.alerts -e -q -f '%h %s\\n'"});
  EXPECT_NE(alerts.output.find("message-id=hot-1"), std::string::npos) << alerts.output;
  EXPECT_NE(alerts.output.find("site=plant-7"), std::string::npos) << alerts.output;

  // Replay the partition: nothing lands twice, the endpoint gets them again.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Count(db.url(), "SELECT coalesce(sum(next_offset), 0) FROM d2c_checkpoints") >= 3;
      },
      30s));
  const auto listed = Ctl({"checkpoints", "list"}, env);
  EXPECT_NE(listed.output.find("NEXT_OFFSET"), std::string::npos) << listed.output;
  const std::string partition = std::to_string(
      Count(db.url(), "SELECT kafka_partition FROM d2c_checkpoints WHERE next_offset = 3"));
  const auto reset = Ctl({"checkpoints", "reset", "--partition", partition, "--earliest"}, env);
  ASSERT_EQ(reset.exit_code, 0) << reset.output;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Count(db.url(),
                     "SELECT replay_skipped FROM d2c_checkpoints WHERE kafka_partition = " +
                         partition) >= 1;
      },
      60s))
      << ferryd.process().Output();
  EXPECT_EQ(Count(db.url(), "SELECT count(*) FROM d2c_events"), 1);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        const auto again =
            testing::Run("/bin/bash", {"-c", "kcat -C -b " + kafka.bootstrap() +
                                                 " -t ferry.alerts -e -q -f '%s\\n' | wc -l"});
        return again.output == "4\n";
      },
      30s));

  // A record with a time that does not parse is dead-lettered; re-driving
  // it without a fix keeps it, with its reason.
  ASSERT_EQ(
      Kcat(kafka.bootstrap(), "{\"temp\":1}", "-H message-id=bad -H iothub-enqueuedtime=yesterday")
          .exit_code,
      0);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Count(db.url(), "SELECT count(*) FROM d2c_dead_letters") == 1; }, 30s));
  const auto dead = Ctl({"deadletters", "list"}, env);
  EXPECT_NE(dead.output.find("invalid_timestamp"), std::string::npos) << dead.output;
  const auto redriven = Ctl({"deadletters", "redrive", "--reason", "invalid_timestamp"}, env);
  EXPECT_NE(redriven.output.find("still_dead"), std::string::npos) << redriven.output;
  EXPECT_EQ(Count(db.url(), "SELECT count(*) FROM d2c_dead_letters"), 1);

  // A header name that is not UTF-8: dead-lettered, and listed with the
  // name's raw bytes (base64 in JSON: ff fe "name").
  ASSERT_EQ(
      Kcat(kafka.bootstrap(), "{\"temp\":2}", "-H message-id=raw -H $'\\xff\\xfename'=v").exit_code,
      0);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Count(db.url(), "SELECT count(*) FROM d2c_dead_letters") == 2; }, 30s));
  const auto raw = Ctl({"deadletters", "list", "--reason", "invalid_header"}, env);
  EXPECT_EQ(raw.exit_code, 0) << raw.output;
  EXPECT_NE(raw.output.find("invalid_header"), std::string::npos) << raw.output;
  const auto raw_json = Ctl({"--json", "deadletters", "list"}, env);
  EXPECT_EQ(raw_json.exit_code, 0) << raw_json.output;
  EXPECT_NE(raw_json.output.find("\"name\":\"//5uYW1l\""), std::string::npos) << raw_json.output;
}

}  // namespace
}  // namespace ferry
