#include <atomic>
#include <cstdlib>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "ferry/v1/registry.grpc.pb.h"
#include "tests/support/api_harness.h"
#include "tests/support/ferryd.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

// A PostgreSQL of this test's own (scripts/pg-tmp), so it can be stopped
// without disturbing other tests.
class OwnPostgres final {
 public:
  OwnPostgres() {
    char tmpl[] = "/tmp/ferry-readiness-XXXXXX";
    dir_ = mkdtemp(tmpl);
    url_ = Script("start");
  }
  ~OwnPostgres() { (void)testing::Run(testing::SourcePath("scripts/pg-tmp"), {"destroy", dir_}); }
  std::string Script(const std::string& cmd) {
    const auto r = testing::Run(testing::SourcePath("scripts/pg-tmp"), {cmd, dir_});
    if (r.exit_code != 0) throw std::runtime_error("pg-tmp " + cmd + " failed: " + r.output);
    return r.output.substr(0, r.output.find('\n'));
  }
  const std::string& url() const { return url_; }

 private:
  std::string dir_;
  std::string url_;
};

TEST(Readiness, FollowsPostgresDownAndBackWhileLivenessStays) {
  OwnPostgres pg;
  testing::FerrydProcess ferryd(pg.url(), {"--migrate"});
  auto channel = ferryd.Channel();
  ASSERT_TRUE(
      testing::WaitFor([&] { return testing::HealthStatus(channel, "") == "SERVING"; }, 15s))
      << ferryd.process().Output();

  pg.Script("stop");
  EXPECT_TRUE(
      testing::WaitFor([&] { return testing::HealthStatus(channel, "") == "NOT_SERVING"; }, 15s))
      << ferryd.process().Output();
  EXPECT_EQ(testing::HealthStatus(channel, "liveness"), "SERVING");

  // A call meanwhile fails as unavailable, not as an internal error.
  auto stub = v1::Registry::NewStub(channel);
  v1::CreateDeviceRequest req;
  req.mutable_device()->set_device_id("during-outage");
  v1::Device resp;
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", testing::FerrydProcess::OwnerToken());
  ctx.set_deadline(std::chrono::system_clock::now() + 30s);
  const auto asked = std::chrono::steady_clock::now();
  EXPECT_EQ(stub->CreateDevice(&ctx, req, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(testing::ErrorReason(ctx), "ServiceUnavailable");
  // Fails fast rather than hanging to the caller's deadline: a connection
  // attempt is refused at once, and a pool wait gives up after 5 s.
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 20s);

  pg.Script("start");
  EXPECT_TRUE(
      testing::WaitFor([&] { return testing::HealthStatus(channel, "") == "SERVING"; }, 20s))
      << ferryd.process().Output();
  grpc::ClientContext ctx2;
  ctx2.AddMetadata("authorization", testing::FerrydProcess::OwnerToken());
  const grpc::Status s = stub->CreateDevice(&ctx2, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// Liveness follows a real signal: with every RPC thread stuck (here on a
// table lock held by the test) and a call waiting behind them, the replica
// says NOT_SERVING on "liveness", so Kubernetes would restart it; once the
// lock goes, it is live again and the calls answer.
TEST(Liveness, DropsWhileEveryRpcThreadIsStuckAndComesBack) {
  OwnPostgres pg;
  testing::FerrydProcess ferryd(
      pg.url(), {"--migrate", "--rpc-workers", "1", "--liveness-stall-seconds", "10"});
  auto channel = ferryd.Channel();
  ASSERT_TRUE(
      testing::WaitFor([&] { return testing::HealthStatus(channel, "") == "SERVING"; }, 15s))
      << ferryd.process().Output();
  EXPECT_EQ(testing::HealthStatus(channel, "liveness"), "SERVING") << ferryd.process().Output();

  pqxx::connection locker(pg.url());
  auto lock = std::make_unique<pqxx::work>(locker);
  lock->exec("LOCK TABLE devices IN ACCESS EXCLUSIVE MODE");

  auto stub = v1::Registry::NewStub(channel);
  std::vector<std::thread> calls;
  std::atomic<int> ok{0};
  for (int i = 0; i < 2; ++i) {
    calls.emplace_back([&, i] {
      v1::CreateDeviceRequest req;
      req.mutable_device()->set_device_id("stuck-" + std::to_string(i));
      v1::Device resp;
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", testing::FerrydProcess::OwnerToken());
      ctx.set_deadline(std::chrono::system_clock::now() + 120s);
      if (stub->CreateDevice(&ctx, req, &resp).ok()) ++ok;
    });
  }
  EXPECT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(channel, "liveness") == "NOT_SERVING"; }, 60s))
      << ferryd.process().Output();
  EXPECT_TRUE(ferryd.process()
                  .WaitForLine(std::regex("liveness NOT_SERVING.*(rpc executor)"), 10s)
                  .has_value())
      << ferryd.process().Output();

  lock->abort();
  for (auto& t : calls) t.join();
  EXPECT_EQ(ok.load(), 2);
  EXPECT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(channel, "liveness") == "SERVING"; }, 60s))
      << ferryd.process().Output();
}

}  // namespace
}  // namespace ferry
