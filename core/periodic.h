#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace ferry {

// A background loop: runs `tick` on its own thread, then waits for the
// duration `tick` returned (or until Wake()), until Stop(). Every periodic
// job in ferryd is one of these, so they all stop, wake, log and report a
// stuck tick the same way.
//
// A tick that throws is logged (warning, with the worker's name) and the
// next one runs after `retry`. Thread-safe; Stop() is idempotent and is
// called by the destructor.
class PeriodicWorker final {
 public:
  using Tick = std::function<std::chrono::milliseconds()>;

  PeriodicWorker(std::string name, Tick tick,
                 std::chrono::milliseconds retry = std::chrono::seconds(1));
  ~PeriodicWorker();
  PeriodicWorker(const PeriodicWorker&) = delete;
  PeriodicWorker& operator=(const PeriodicWorker&) = delete;

  void Start();
  // Runs the next tick now (or right after the one running).
  void Wake();
  // Lets the running tick finish and joins the thread.
  void Stop();
  [[nodiscard]] bool stopping() const { return stopping_.load(); }

  [[nodiscard]] const std::string& name() const { return name_; }
  // How long the tick running now has been running; nullopt between ticks.
  // The liveness check (core/liveness.h) calls it.
  [[nodiscard]] std::optional<std::chrono::steady_clock::duration> Busy() const;

 private:
  void Run();

  const std::string name_;
  const Tick tick_;
  const std::chrono::milliseconds retry_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool woken_ = false;
  std::atomic<bool> stopping_{false};
  // steady_clock ticks when the running tick began, 0 between ticks.
  std::atomic<std::chrono::steady_clock::rep> busy_since_{0};
  std::thread thread_;
};

}  // namespace ferry
