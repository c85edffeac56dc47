#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <prometheus/registry.h>

#include "core/pg/migrator.h"
#include "core/pg/pool.h"

namespace ferry::health {

// Watches whether this replica can serve: PostgreSQL reachable and every
// migration this build knows applied unchanged. Checks every `interval` on
// its own thread and calls `on_change(ready)` on every transition (and once
// with the first result). Exposes ferry_ready (0 or 1).
class ReadinessMonitor final {
 public:
  // `extra_check` (optional) runs after the database checks pass and returns
  // "" when ready, else why not.
  ReadinessMonitor(pg::Pool& pool, const pg::Migrator& migrator,
                   std::function<void(bool)> on_change, std::chrono::milliseconds interval,
                   prometheus::Registry& registry,
                   std::function<std::string()> extra_check = nullptr);
  ~ReadinessMonitor();
  ReadinessMonitor(const ReadinessMonitor&) = delete;
  ReadinessMonitor& operator=(const ReadinessMonitor&) = delete;

  void Start();
  void Stop();
  [[nodiscard]] bool ready() const { return ready_.load(); }

  // One check, without side effects: empty when ready, else why not.
  [[nodiscard]] std::string Check();

 private:
  void Loop();

  pg::Pool& pool_;
  const pg::Migrator& migrator_;
  std::function<void(bool)> on_change_;
  std::function<std::string()> extra_check_;
  std::chrono::milliseconds interval_;
  prometheus::Gauge& gauge_;
  std::atomic<bool> ready_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ferry::health
