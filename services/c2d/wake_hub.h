#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "core/periodic.h"

namespace ferry::pg {
class Listener;
}

namespace ferry::c2d {

// Who is waiting for which device's queue, without a thread each: waiting
// Receive calls and Subscribe streams register a callback that runs once,
// when the device's queue may have become deliverable (NOTIFY `ferry_c2d`
// from any replica, or a local Notify), at their wake-up time, after a
// listener reconnect (notifications may have been missed), or at Shutdown.
// Callbacks run on the hub's one timer thread (a PeriodicWorker whose tick
// fires what is due and waits until the next wake-up time) and must be quick (post work
// to an executor). Thread-safe.
class WakeHub final {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Why { kNotified, kTime, kShutdown };
  using Callback = std::function<void(Why)>;

  WakeHub();
  ~WakeHub();
  WakeHub(const WakeHub&) = delete;
  WakeHub& operator=(const WakeHub&) = delete;

  // Subscribes to `channel` (its payload is the key to wake) and to
  // resyncs, before the listener starts.
  void Attach(pg::Listener& listener, const std::string& channel = "ferry_c2d");

  // Registers a one-shot wake-up; returns its id. After Shutdown the
  // callback runs at once (on the timer thread) with kShutdown.
  std::uint64_t Watch(const std::string& device_id, Clock::time_point at, Callback callback);
  // Moves a watch's wake-up time earlier (never later).
  void WakeBy(std::uint64_t id, Clock::time_point at);
  // Removes a watch; false if its callback already ran or is running.
  bool Cancel(std::uint64_t id);
  void Notify(const std::string& device_id);
  void NotifyAll();
  // Runs every callback with kShutdown; later watches end at once.
  void Shutdown();

  [[nodiscard]] std::size_t watching() const;
  [[nodiscard]] const PeriodicWorker& worker() const { return worker_; }

 private:
  struct Watcher {
    std::string device_id;
    Clock::time_point at;
    Callback callback;
    std::optional<Why> fire;  // set: due now
  };
  // Runs the callbacks due; returns the time to the next wake-up.
  std::chrono::milliseconds Tick();

  mutable std::mutex mutex_;
  std::map<std::uint64_t, Watcher> watchers_;
  std::multimap<std::string, std::uint64_t> by_device_;
  std::set<std::pair<Clock::time_point, std::uint64_t>> by_time_;
  std::uint64_t next_id_ = 1;
  bool shutdown_ = false;
  PeriodicWorker worker_;  // last: stopped before the members it uses go
};

}  // namespace ferry::c2d
