// The device simulator against a real ferryd, with a small audit of what it
// recorded: every acknowledged event landed once, every accepted C2D message
// exists, every feedback record was asked for.
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
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
  testing::FerrydProcess ferryd(db.url(), {"--migrate"});
  ASSERT_TRUE(testing::WaitFor([&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 30s));
  const std::string record = "/tmp/devsim-" + std::to_string(getpid()) + ".jsonl";
  std::remove(record.c_str());
  auto env = ferryd.CtlEnv();
  const auto run = testing::Run(testing::BinPath("devsim"),
                                {"--devices", "5", "--d2c-rate", "40", "--c2d-rate", "5", "--duration", "5",
                                 "--complete", "0.7", "--abandon", "0.2", "--reject", "0.1", "--record", record},
                                60s, env);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("d2c "), std::string::npos) << run.output;

  std::map<std::string, long> d2c;         // message id → times acknowledged
  std::map<std::string, int> c2d_ack;      // message id → ack mode
  std::vector<std::pair<std::string, std::string>> feedback;  // message id, status
  std::ifstream in(record);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const std::string kind = j.at("kind");
    if (kind == "d2c") ++d2c[j.at("message_id")];
    if (kind == "c2d") c2d_ack[j.at("message_id")] = j.at("ack");
    if (kind == "feedback") feedback.emplace_back(j.at("message_id"), j.at("status"));
  }
  std::remove(record.c_str());
  ASSERT_GT(d2c.size(), 100u);
  ASSERT_GT(c2d_ack.size(), 10u);
  // Every acknowledged event lands exactly once.
  ASSERT_TRUE(testing::WaitFor([&] {
    return db.Count("SELECT count(*) FROM d2c_events WHERE message_id LIKE 'd-%'") >= static_cast<long>(d2c.size());
  }, 60s));
  pqxx::connection conn(db.url());
  pqxx::nontransaction tx(conn);
  std::map<std::string, long> landed;
  for (const auto& r : tx.exec("SELECT message_id, count(*) FROM d2c_events WHERE message_id LIKE 'd-%'"
                               " GROUP BY message_id")) {
    landed[r[0].as<std::string>()] = r[1].as<long>();
  }
  for (const auto& [id, n] : d2c) EXPECT_EQ(landed[id], 1) << id;
  EXPECT_EQ(landed.size(), d2c.size());
  // Every accepted C2D message exists; feedback only where the ack asked.
  for (const auto& [id, ack] : c2d_ack) {
    EXPECT_EQ(tx.exec_params("SELECT 1 FROM c2d_messages WHERE message_id = $1", id).size(), 1u) << id;
  }
  for (const auto& [id, status] : feedback) {
    ASSERT_EQ(c2d_ack.count(id), 1u) << id;
    const int ack = c2d_ack[id];  // 1 none, 2 positive, 3 negative, 4 full
    EXPECT_NE(ack, 1) << id;
    if (ack == 2) {
      EXPECT_EQ(status, "Success") << id;
    }
    if (ack == 3) {
      EXPECT_NE(status, "Success") << id;
    }
  }
  const std::set<std::pair<std::string, std::string>> distinct(feedback.begin(), feedback.end());
  EXPECT_EQ(distinct.size(), feedback.size());  // Watch repeated nothing
}

}  // namespace
}  // namespace ferry
