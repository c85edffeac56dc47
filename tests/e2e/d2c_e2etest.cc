#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <atomic>
#include <random>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

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
    for (int i = 0; i < 100 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0; ++i) {
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
  testing::FerrydProcess ferryd(db.url(), {"--migrate", "--kafka-brokers", kafka.bootstrap()}, D2cEnv());
  const auto sent = testing::Run(
      "/bin/bash",
      {"-c", "printf '%s\\n' '{\"temp\":21.5}' '{\"temp\":22.0}' | kcat -P -b " + kafka.bootstrap() +
                 " -t ferry.d2c -X partitioner=murmur2_random -k thermostat-7"
                 " -H message-id=m1 -H content-type=application/json -H content-encoding=utf-8"
                 " -H alert=false"});
  ASSERT_EQ(sent.exit_code, 0) << sent.output;
  ASSERT_TRUE(testing::WaitFor([&] { return Count(db.url(), "SELECT count(*) FROM d2c_events") >= 2; }, 60s))
      << ferryd.process().Output();
  EXPECT_EQ(Count(db.url(), "SELECT count(*) FROM d2c_events WHERE device_id = 'thermostat-7'"
                            " AND message_id = 'm1' AND content_type = 'application/json'"
                            " AND application_properties->>'alert' = 'false'"),
            2);
}

TEST(D2c, ReadinessFollowsKafkaDownAndBack) {
  DevKafka kafka;
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate", "--kafka-brokers", kafka.bootstrap()}, D2cEnv());
  auto channel = ferryd.Channel();
  ASSERT_TRUE(testing::WaitFor([&] { return testing::HealthStatus(channel, "") == "SERVING"; }, 20s))
      << ferryd.process().Output();
  EXPECT_EQ(kafka.Command("down 1"), "ok down 1");
  EXPECT_TRUE(testing::WaitFor([&] { return testing::HealthStatus(channel, "") == "NOT_SERVING"; }, 20s))
      << ferryd.process().Output();
  EXPECT_EQ(testing::HealthStatus(channel, "liveness"), "SERVING");
  EXPECT_EQ(kafka.Command("up 1"), "ok up 1");
  EXPECT_TRUE(testing::WaitFor([&] { return testing::HealthStatus(channel, "") == "SERVING"; }, 30s))
      << ferryd.process().Output();
  EXPECT_NE(ferryd.process().Output().find("Kafka unreachable"), std::string::npos);
}

TEST(D2c, EveryEventLandsExactlyOnceAcrossRepeatedSigkills) {
  DevKafka kafka;
  testing::TestDatabase db;
  {
    // Migrate once up front; the killed instances then start straight away.
    const auto m = testing::Run(testing::BinPath("ferryd"), {"--postgres-url", db.url(), "migrate"});
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
    testing::FerrydProcess ferryd(db.url(), {"--roles", "d2c", "--kafka-brokers", kafka.bootstrap(),
                                             "--d2c-linger-ms", "20"},
                                  D2cEnv());
    // Kill only once it has landed something, at a random moment after.
    ASSERT_TRUE(testing::WaitFor(
        [&] { return Count(db.url(), "SELECT count(*) FROM d2c_events") > last; }, 60s))
        << "seed " << seed << "\n" << ferryd.process().Output();
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    ferryd.process().Signal(SIGKILL);
    ASSERT_TRUE(ferryd.process().Wait(10s).has_value());
    last = Count(db.url(), "SELECT count(*) FROM d2c_events");
  }
  stop = true;
  producer.join();
  const long total = produced;
  testing::FerrydProcess survivor(db.url(), {"--roles", "d2c", "--kafka-brokers", kafka.bootstrap()},
                                  D2cEnv());
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Count(db.url(), "SELECT count(*) FROM d2c_events") >= total; }, 90s))
      << "seed " << seed << ": " << Count(db.url(), "SELECT count(*) FROM d2c_events") << " of " << total;
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
