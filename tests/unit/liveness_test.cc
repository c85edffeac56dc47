#include "core/liveness.h"

#include <atomic>
#include <future>

#include <gtest/gtest.h>

#include "core/executor.h"
#include "core/periodic.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::WaitFor;

TEST(PeriodicWorker, RunsTicksUntilStoppedAndWakesEarly) {
  std::atomic<int> ticks{0};
  PeriodicWorker w("test", [&] {
    ++ticks;
    return std::chrono::milliseconds(1h);  // only Wake() brings the next tick
  });
  w.Start();
  ASSERT_TRUE(WaitFor([&] { return ticks == 1; }, 30s));
  w.Wake();
  ASSERT_TRUE(WaitFor([&] { return ticks == 2; }, 30s));
  w.Stop();  // does not wait the hour
  EXPECT_EQ(ticks, 2);
  w.Stop();  // idempotent
}

TEST(PeriodicWorker, RetriesAfterATickThrows) {
  std::atomic<int> ticks{0};
  PeriodicWorker w(
      "failing",
      [&]() -> std::chrono::milliseconds {
        if (++ticks < 3) throw std::runtime_error("not yet");
        return 1h;
      },
      1ms);
  w.Start();
  EXPECT_TRUE(WaitFor([&] { return ticks == 3; }, 30s));
}

TEST(PeriodicWorker, ReportsABusyTickAndNoneBetweenTicks) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> in_tick{false};
  PeriodicWorker w("blocked", [&] {
    in_tick = true;
    released.wait();
    in_tick = false;
    return std::chrono::milliseconds(1h);
  });
  EXPECT_FALSE(w.Busy().has_value());
  w.Start();
  ASSERT_TRUE(WaitFor([&] { return in_tick.load(); }, 30s));
  ASSERT_TRUE(w.Busy().has_value());
  EXPECT_GE(*w.Busy(), 0ns);
  release.set_value();
  EXPECT_TRUE(WaitFor([&] { return !w.Busy().has_value(); }, 30s));
}

TEST(Executor, OldestWaitIsTheWaitOfTheFirstQueuedTask) {
  Executor executor(1);
  EXPECT_FALSE(executor.OldestWait().has_value());
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> started{false};
  executor.Post([&] {
    started = true;
    released.wait();
  });
  ASSERT_TRUE(WaitFor([&] { return started.load(); }, 30s));
  EXPECT_FALSE(executor.OldestWait().has_value());  // running is not waiting
  std::atomic<bool> second{false};
  executor.Post([&] { second = true; });
  ASSERT_TRUE(executor.OldestWait().has_value());  // the only thread is taken
  release.set_value();
  ASSERT_TRUE(WaitFor([&] { return second.load(); }, 30s));
  EXPECT_FALSE(executor.OldestWait().has_value());
}

TEST(Liveness, NamesTheSourcesStuckPastTheLimit) {
  Liveness l;
  std::optional<Liveness::Duration> a, b;
  l.Add("a", [&] { return a; });
  l.Add("b", [&] { return b; });
  EXPECT_TRUE(l.Stuck(10s).empty());
  a = 5s;
  b = 30s;
  EXPECT_EQ(l.Stuck(10s), std::vector<std::string>{"b (30 s)"});
  a = 11s;
  EXPECT_EQ(l.Stuck(10s), (std::vector<std::string>{"a (11 s)", "b (30 s)"}));
  EXPECT_TRUE(l.Stuck(30s).empty());  // longer than, not as long as
  b.reset();
  a.reset();
  EXPECT_TRUE(l.Stuck(0s).empty());
}

}  // namespace
}  // namespace ferry
