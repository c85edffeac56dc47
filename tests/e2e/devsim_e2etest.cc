// The device simulator against a real ferryd, with a small audit of what it
// recorded: every acknowledged event landed once, every accepted C2D message
// exists, every feedback record was asked for.
#include <fstream>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "tests/support/ferryd.h"
#include "tests/support/pg.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

TEST(Devsim, EverythingItWasAcknowledgedIsInFerryOnce) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate", "--c2d-max-queue-depth", "3"});
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 30s));
  const std::string record = "/tmp/devsim-" + std::to_string(getpid()) + ".jsonl";
  std::remove(record.c_str());
  auto env = ferryd.CtlEnv();
  const auto run = testing::Run(
      testing::BinPath("devsim"),
      {"--devices", "5", "--d2c-rate", "40", "--c2d-rate", "8", "--duration", "5", "--complete",
       "0.7", "--abandon", "0.2", "--reject", "0.1", "--record", record, "--offline-devices", "1"},
      60s, env);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("d2c "), std::string::npos) << run.output;

  // Let landing catch up with what was acknowledged, then audit.
  long acknowledged = 0;
  {
    std::ifstream in(record);
    std::string line;
    while (std::getline(in, line))
      acknowledged += line.find("\"kind\":\"d2c\"") != std::string::npos ? 1 : 0;
  }
  ASSERT_GT(acknowledged, 20);  // a sample worth auditing, at any machine's pace
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return db.Count("SELECT count(*) FROM d2c_events WHERE message_id LIKE 'd-%'") >=
               acknowledged;
      },
      60s));
  const auto audit =
      testing::Run(testing::BinPath("audit"), {"--postgres-url", db.url(), "--record", record});
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_NE(audit.output.find("lost 0, duplicated 0"), std::string::npos) << audit.output;
  EXPECT_NE(audit.output.find("AUDIT PASSED"), std::string::npos) << audit.output;
  std::cout << audit.output;
  // sim-4 never receives: about eight sends reached it, three were queued and
  // the rest refused with DeviceMaximumQueueDepthExceeded.
  EXPECT_NE(audit.output.find("C2D deepest queue 3 of 50 allowed, queues over depth 0"),
            std::string::npos)
      << audit.output;
  EXPECT_EQ(db.Count("SELECT count(*) FROM c2d_messages WHERE device_id = 'sim-4'"), 3);
  const auto summary = run.output.rfind("queue full ");
  ASSERT_NE(summary, std::string::npos) << run.output;
  EXPECT_NE(run.output.substr(summary, 13), "queue full 0)") << run.output;
  // The depth check can fail: audited against a smaller depth than ferryd's.
  const auto deeper =
      testing::Run(testing::BinPath("audit"),
                   {"--postgres-url", db.url(), "--record", record, "--max-queue-depth", "2"});
  EXPECT_EQ(deeper.exit_code, 1) << deeper.output;
  EXPECT_NE(deeper.output.find("device sim-4 had 3 pending messages (depth 2)"), std::string::npos)
      << deeper.output;

  // The auditor is not a check that cannot fail: lose one event and double
  // one feedback record behind Ferry's back.
  {
    pqxx::connection conn(db.url());
    pqxx::work tx(conn);
    tx.exec0(
        "DELETE FROM d2c_events WHERE ctid = (SELECT ctid FROM d2c_events WHERE message_id LIKE "
        "'d-%' LIMIT 1)");
    tx.commit();
  }
  const auto failed =
      testing::Run(testing::BinPath("audit"), {"--postgres-url", db.url(), "--record", record});
  EXPECT_EQ(failed.exit_code, 1) << failed.output;
  EXPECT_NE(failed.output.find("lost 1,"), std::string::npos) << failed.output;
  EXPECT_NE(failed.output.find("unaccounted 1"), std::string::npos) << failed.output;
  std::remove(record.c_str());
}

}  // namespace
}  // namespace ferry
