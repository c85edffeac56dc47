#include <chrono>
#include <memory>

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/pg/pool.h"
#include "ferryd/components.h"
#include "tests/support/api_harness.h"
#include "tests/support/pg.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

// ferryd's Serve builds Components, then Start throws when the gRPC port is
// taken. The listener that Start had started used to belong to Serve and
// outlived the Components members it calls back into: a resync after they
// were gone was a use-after-free (a sanitized e2e run caught it once).
// Components now owns the listener and stops it first. The listener's
// dedicated connection shows that it stopped.
TEST(Components, DestroyedAfterAFailedStartItStopsItsListener) {
  testing::TestDatabase db;
  db.Migrate();
  testing::ApiHarness first(db.url());  // holds a port
  // The second Components' connections, told apart from the harness's
  // (which may open more at any time) by their application name.
  const std::string second_url = db.url() + (db.url().find('?') == std::string::npos ? "?" : "&") +
                                 "application_name=components-second";
  const std::string seconds =
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'components-second'";

  {
    auto registry = std::make_shared<prometheus::Registry>();
    pg::Pool pool(pg::PoolOptions{.url = second_url, .max_size = 2}, registry.get());
    {
      SystemClock clock;
      ComponentOptions o;
      o.kafka_brokers = first.kafka().bootstrap();
      o.rpc_workers = 1;
      Components second(o, pool, *registry, clock);
      const std::string taken = "127.0.0.1:" + std::to_string(first.port());
      try {
        second.Start(GrpcServerOptions{.listen = taken}, false);
        ADD_FAILURE() << "Start on a taken port did not throw";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot listen for gRPC on " + taken),
                  std::string::npos)
            << e.what();
      }
      // Start had started the listener; its connection is up.
      ASSERT_TRUE(testing::WaitFor([&] { return second.listener().connected(); }, 10s));
      EXPECT_GT(db.Count(seconds), 0);
    }  // no Shutdown: the destructor must stop what Start started
  }    // the pool's connections go too
  // Only the listener could still hold a connection now.
  EXPECT_TRUE(testing::WaitFor([&] { return db.Count(seconds) == 0; }, 10s))
      << db.Count(seconds) << " connections left";
}

}  // namespace
}  // namespace ferry
