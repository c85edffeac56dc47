#include <signal.h>

#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "ferry/v1/registry.grpc.pb.h"
#include "tests/support/ferryd.h"
#include "tests/support/pg.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::BinPath;
using testing::HealthStatus;

testing::RunResult Shell(const std::string& command) {
  return testing::Run("/bin/bash", {"-c", command}, 60s);
}

TEST(Ferryd, ServesHealthRegistryAndMetricsThenStopsOnSigterm) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate"});
  auto channel = ferryd.Channel();
  EXPECT_TRUE(testing::WaitFor([&] { return HealthStatus(channel, "") == "SERVING"; }, 15s))
      << ferryd.process().Output();
  EXPECT_EQ(HealthStatus(channel, "liveness"), "SERVING");

  // ferryctl, as an operator would use it.
  const auto anonymous =
      testing::Run(BinPath("ferryctl"), {"--endpoint", ferryd.grpc_address(), "devices", "list"});
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_NE(anonymous.output.find("IotHubUnauthorizedAccess"), std::string::npos)
      << anonymous.output;
  const auto created = testing::Run(BinPath("ferryctl"), {"devices", "create", "thermostat-7"}, 60s,
                                    ferryd.CtlEnv());
  EXPECT_EQ(created.exit_code, 0) << created.output;
  EXPECT_NE(created.output.find("thermostat-7"), std::string::npos) << created.output;
  const auto again = testing::Run(BinPath("ferryctl"), {"devices", "create", "thermostat-7"}, 60s,
                                  ferryd.CtlEnv());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("DeviceAlreadyExists"), std::string::npos) << again.output;

  const auto listed =
      testing::Run(BinPath("ferryctl"), {"--json", "devices", "list"}, 60s, ferryd.CtlEnv());
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  const auto device = nlohmann::json::parse(listed.output.substr(0, listed.output.find('\n')));
  EXPECT_EQ(device["device_id"], "thermostat-7");
  EXPECT_EQ(device["status"], "DEVICE_STATUS_ENABLED");

  const auto table = testing::Run(BinPath("ferryctl"), {"devices", "list"}, 60s, ferryd.CtlEnv());
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_TRUE(std::regex_search(table.output, std::regex("DEVICE ID +STATUS")) &&
              std::regex_search(table.output, std::regex("thermostat-7 +Enabled")))
      << table.output;

  // Metrics: counted calls, build info, process and pool gauges; promtool clean.
  const std::string url = "http://127.0.0.1:" + std::to_string(ferryd.metrics_port()) + "/metrics";
  const auto scrape = Shell("curl -sf " + url);
  ASSERT_EQ(scrape.exit_code, 0) << scrape.output;
  for (const char* want : {"ferry_grpc_requests_total{code=\"OK\",method=\"CreateDevice\",service="
                           "\"ferry.v1.Registry\"} 1",
                           "ferry_grpc_requests_total{code=\"UNAUTHENTICATED\",method="
                           "\"ListDevices\",service=\"ferry.v1.Registry\"} 1",
                           "ferry_grpc_requests_total{code=\"ALREADY_EXISTS\",method="
                           "\"CreateDevice\",service=\"ferry.v1.Registry\"} 1",
                           "ferry_grpc_request_duration_seconds_bucket{", "ferry_build_info{",
                           "process_resident_memory_bytes ", "process_open_fds ",
                           "process_start_time_seconds ", "process_cpu_seconds_total ",
                           "ferry_db_pool_connections{state=\"idle\"}", "ferry_ready 1"}) {
    EXPECT_NE(scrape.output.find(want), std::string::npos) << want << "\n" << scrape.output;
  }
  const auto lint = Shell("curl -sf " + url + " | promtool check metrics");
  EXPECT_EQ(lint.exit_code, 0) << lint.output;
  EXPECT_EQ(lint.output, "") << "promtool check metrics printed findings";

  ferryd.process().Signal(SIGTERM);
  const auto status = ferryd.process().Wait(15s);
  ASSERT_TRUE(status.has_value()) << "ferryd did not exit within 15 s of SIGTERM";
  EXPECT_EQ(*status, 0) << ferryd.process().Output();
  EXPECT_NE(ferryd.process().Output().find("\"msg\":\"stopped\""), std::string::npos);
}

TEST(Ferryd, AFatalSignalIsReportedWithTheCrashingStack) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate"});
  auto channel = ferryd.Channel();
  ASSERT_TRUE(testing::WaitFor([&] { return HealthStatus(channel, "") == "SERVING"; }, 15s))
      << ferryd.process().Output();
  ferryd.process().Signal(SIGSEGV);
  const auto status = ferryd.process().Wait(15s);
  ASSERT_TRUE(status.has_value()) << "ferryd did not die of SIGSEGV";
  // The default action still runs after the report: killed by the signal.
  EXPECT_EQ(*status, 128 + SIGSEGV);
  const std::string out = ferryd.process().Output();
  EXPECT_NE(out.find("ferryd: fatal signal Segmentation fault; stack of the crashing thread:"),
            std::string::npos)
      << out;
  // At least one frame of ferryd itself, in the form addr2line reads.
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(ferryd\(\S*\+0x[0-9a-f]+\) ?\[0x[0-9a-f]+\])")))
      << out;
}

TEST(Ferryd, SigtermLetsAnInFlightCallFinish) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate"});
  auto channel = ferryd.Channel();
  ASSERT_TRUE(testing::WaitFor([&] { return HealthStatus(channel, "") == "SERVING"; }, 15s));
  auto stub = v1::Registry::NewStub(channel);
  v1::CreateDeviceRequest create;
  create.mutable_device()->set_device_id("slow");
  v1::Device device;
  grpc::ClientContext create_ctx;
  create_ctx.AddMetadata("authorization", testing::FerrydProcess::OwnerToken());
  ASSERT_TRUE(stub->CreateDevice(&create_ctx, create, &device).ok());

  // Hold the device's row lock so that an update waits inside ferryd.
  pqxx::connection conn(db.url());
  pqxx::work blocker(conn);
  blocker.exec("SELECT 1 FROM devices WHERE device_id = 'slow' FOR UPDATE");

  v1::UpdateDeviceRequest update;
  *update.mutable_device() = device;
  update.mutable_device()->set_status_reason("updated during shutdown");
  grpc::ClientContext update_ctx;
  update_ctx.AddMetadata("authorization", testing::FerrydProcess::OwnerToken());
  update_ctx.set_deadline(std::chrono::system_clock::now() + 30s);
  v1::Device updated;
  grpc::Status update_status;
  std::thread caller([&] { update_status = stub->UpdateDevice(&update_ctx, update, &updated); });
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        pqxx::connection probe(db.url());
        pqxx::nontransaction tx(probe);
        // This database's own waiter: tests running alongside share the server.
        return tx.exec_params(
                     "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                     " AND datname = $1 AND pid <> pg_backend_pid()",
                     db.name())[0][0]
                   .as<int>() > 0;
      },
      30s));

  ferryd.process().Signal(SIGTERM);
  ASSERT_TRUE(ferryd.process().WaitForLine(std::regex("shutting down"), 20s).has_value());
  // New calls are refused while the old one is still in flight.
  v1::GetDeviceRequest get;
  get.set_device_id("slow");
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        grpc::ClientContext late_ctx;
        late_ctx.AddMetadata("authorization", testing::FerrydProcess::OwnerToken());
        late_ctx.set_deadline(std::chrono::system_clock::now() + 1s);
        v1::Device ignored;
        return !stub->GetDevice(&late_ctx, get, &ignored).ok();
      },
      5s));
  EXPECT_FALSE(ferryd.process().Wait(0ms).has_value()) << "ferryd exited before its call finished";
  blocker.commit();
  caller.join();
  EXPECT_TRUE(update_status.ok()) << update_status.error_message();
  EXPECT_EQ(updated.status_reason(), "updated during shutdown");
  const auto status = ferryd.process().Wait(15s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << ferryd.process().Output();
}

TEST(Ferryd, ASecondFerrydOnATakenPortFailsWithAClearMessage) {
  testing::TestDatabase db;
  testing::FerrydProcess first(db.url(), {"--migrate"});
  testing::ChildProcess second(BinPath("ferryd"),
                               {"--postgres-url", db.url(), "serve", "--grpc-listen",
                                first.grpc_address(), "--metrics-listen", "127.0.0.1:0"});
  const auto status = second.Wait(20s);
  ASSERT_TRUE(status.has_value()) << "the second ferryd kept running";
  EXPECT_EQ(*status, 1);
  EXPECT_NE(second.Output().find("cannot listen for gRPC on " + first.grpc_address()),
            std::string::npos)
      << second.Output();
  // The first one is unharmed.
  EXPECT_EQ(HealthStatus(first.Channel(), "liveness"), "SERVING");

  testing::ChildProcess third(
      BinPath("ferryd"), {"--postgres-url", db.url(), "serve", "--grpc-listen", "127.0.0.1:0",
                          "--metrics-listen", "127.0.0.1:" + std::to_string(first.metrics_port())});
  ASSERT_EQ(third.Wait(20s).value_or(-1), 1);
  EXPECT_NE(third.Output().find("cannot serve metrics on"), std::string::npos) << third.Output();
}

// The d2c role's consumer starts once the store is usable (day partitions
// made). One that cannot start ends ferryd with the reason instead of
// leaving the role running without a consumer, which nothing would retry.
TEST(Ferryd, AD2cConsumerThatCannotStartEndsFerrydWithTheReason) {
  testing::TestDatabase db;
  db.Migrate();
  testing::ChildProcess ferryd(
      BinPath("ferryd"),
      {"--postgres-url", db.url(), "serve", "--roles", "d2c", "--grpc-listen", "127.0.0.1:0",
       "--metrics-listen", "127.0.0.1:0", "--kafka-property", "auto.offset.reset=earliest"});
  const auto status = ferryd.Wait(60s);
  ASSERT_TRUE(status.has_value()) << "ferryd kept running without a consumer\n" << ferryd.Output();
  EXPECT_EQ(*status, 1) << ferryd.Output();
  EXPECT_NE(ferryd.Output().find("the d2c consumer cannot go on (it did not start: kafka property "
                                 "auto.offset.reset is Ferry's own"),
            std::string::npos)
      << ferryd.Output();
}

TEST(Ferryd, NotReadyUntilMigratedThenReady) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {});
  auto channel = ferryd.Channel();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return ferryd.process().Output().find("migrations pending") != std::string::npos; },
      10s))
      << ferryd.process().Output();
  EXPECT_EQ(HealthStatus(channel, ""), "NOT_SERVING");
  EXPECT_EQ(HealthStatus(channel, "liveness"), "SERVING");

  const auto migrate = testing::Run(BinPath("ferryd"), {"--postgres-url", db.url(), "migrate"});
  ASSERT_EQ(migrate.exit_code, 0) << migrate.output;
  EXPECT_TRUE(testing::WaitFor([&] { return HealthStatus(channel, "") == "SERVING"; }, 10s));
  const auto again = testing::Run(BinPath("ferryd"), {"--postgres-url", db.url(), "migrate"});
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.output.find("applied=0"), std::string::npos) << again.output;
}

TEST(Ferryd, VersionAndConfigurationErrors) {
  const auto version = testing::Run(BinPath("ferryd"), {"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_TRUE(std::regex_search(version.output, std::regex("^ferryd \\d+\\.\\d+\\.\\d+")))
      << version.output;

  const auto no_url =
      testing::Run("/usr/bin/env", {"-u", "FERRY_POSTGRES_URL", BinPath("ferryd"), "serve"});
  EXPECT_EQ(no_url.exit_code, 2);
  EXPECT_NE(no_url.output.find("FERRY_POSTGRES_URL"), std::string::npos) << no_url.output;

  const auto bad_role = testing::Run(
      BinPath("ferryd"), {"--postgres-url", "postgresql:///x", "serve", "--roles", "bogus"});
  EXPECT_EQ(bad_role.exit_code, 2);
  EXPECT_NE(bad_role.output.find("unknown role 'bogus'"), std::string::npos) << bad_role.output;
}

}  // namespace
}  // namespace ferry
