#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <prometheus/registry.h>

#include "core/periodic.h"
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

  void Start() { worker_.Start(); }
  void Stop() { worker_.Stop(); }
  [[nodiscard]] const PeriodicWorker& worker() const { return worker_; }
  [[nodiscard]] bool ready() const { return ready_.load(); }

  // One check, without side effects: empty when ready, else why not.
  [[nodiscard]] std::string Check();

 private:
  std::chrono::milliseconds Pass();

  pg::Pool& pool_;
  const pg::Migrator& migrator_;
  std::function<void(bool)> on_change_;
  std::function<std::string()> extra_check_;
  std::chrono::milliseconds interval_;
  prometheus::Gauge& gauge_;
  std::atomic<bool> ready_{false};
  std::optional<bool> last_;
  std::string last_why_;
  PeriodicWorker worker_;  // last: stops first
};

}  // namespace ferry::health
