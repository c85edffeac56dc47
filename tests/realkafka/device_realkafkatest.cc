// SendEvent against a real three-node Kafka cluster: what Ferry
// acknowledged lands once while the leader of a partition is SIGKILLed (the
// idempotent producer's retries go to the new leader). Label `realkafka`.
#include <signal.h>

#include <fstream>
#include <iostream>

#include <gtest/gtest.h>

#include "tests/support/ferryd.h"
#include "tests/support/pg.h"
#include "tests/support/process.h"
#include "tests/support/real_kafka.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

long Acknowledged(const std::string& record) {
  std::ifstream in(record);
  std::string line;
  long n = 0;
  while (std::getline(in, line)) n += line.find("\"kind\":\"d2c\"") != std::string::npos ? 1 : 0;
  return n;
}

TEST(RealKafkaDevice, AcknowledgedEventsLandOnceThroughALeaderKill) {
  testing::RealKafka kafka(3);
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(
      db.url(), {"--migrate", "--roles", "api,d2c", "--kafka-brokers", kafka.bootstrap()},
      {{"FERRY_KAFKA_PROPERTIES", "session.timeout.ms=6000;heartbeat.interval.ms=500;"
                                  "topic.metadata.refresh.interval.ms=1000"}});
  ASSERT_TRUE(testing::WaitFor([&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 60s))
      << ferryd.process().Output();
  const std::string record = "/tmp/realkafka-devsim-" + std::to_string(getpid()) + ".jsonl";
  std::remove(record.c_str());
  auto env = ferryd.CtlEnv();
  testing::ChildProcess devsim(testing::BinPath("devsim"),
                               {"--devices", "8", "--d2c-rate", "60", "--c2d-rate", "0", "--duration", "0",
                                "--record", record},
                               env);
  // Some acknowledged before the fault, then the leader of partition 0
  // killed while sends go on, and more acknowledged after it.
  ASSERT_TRUE(testing::WaitFor([&] { return Acknowledged(record) >= 100; }, 60s)) << devsim.Output();
  const int killed = kafka.KillLeader("ferry.d2c", 0);
  const long at_kill = Acknowledged(record);
  ASSERT_TRUE(testing::WaitFor([&] { return Acknowledged(record) >= at_kill + 300; }, 120s))
      << devsim.Output() << ferryd.process().Output();
  kafka.Restart(killed);
  devsim.Signal(SIGINT);
  ASSERT_TRUE(devsim.Wait(60s).has_value()) << devsim.Output();
  std::cout << devsim.Output() << std::endl;

  const long acknowledged = Acknowledged(record);
  ASSERT_TRUE(testing::WaitFor([&] {
    return db.Count("SELECT count(*) FROM d2c_events WHERE message_id LIKE 'd-%'") >= acknowledged;
  }, 120s)) << ferryd.process().Output();
  const auto audit = testing::Run(testing::BinPath("audit"), {"--postgres-url", db.url(), "--record", record});
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_NE(audit.output.find("lost 0, duplicated 0"), std::string::npos) << audit.output;
  std::cout << audit.output;
  std::remove(record.c_str());
}

}  // namespace
}  // namespace ferry
