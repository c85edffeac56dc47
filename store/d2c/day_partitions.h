#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/d2c/landing_plan.h"

namespace ferry::pg {
class Pool;
}

namespace ferry::d2c {

// The day partitions of d2c_events: one table per UTC day of enqueued time,
// created ahead and dropped by retention, always outside a landing
// transaction. One owner keeps them (the d2c role's Maintenance); landing
// reads the cached range to dead-letter events no day can hold. Thread-safe.
class DayPartitions final {
 public:
  explicit DayPartitions(pg::Pool& pool) : pool_(pool) {}

  // Creates [today - retention_days, today + ahead_days] where missing,
  // each as a table then attached, and returns the names created.
  // DropExpired detaches (with a lock timeout, retried) and drops days
  // before today - retention_days. Both serialise across replicas on an
  // advisory lock.
  std::vector<std::string> Ensure(TimePoint now, int ahead_days, int retention_days);
  std::vector<std::string> DropExpired(TimePoint now, int retention_days);
  // The range, read once and then cached until Refresh (or Ensure or
  // DropExpired) reads it again.
  [[nodiscard]] DayRange Range();
  void Refresh();

 private:
  pg::Pool& pool_;
  std::mutex mutex_;
  std::optional<DayRange> range_;
};

// "d2c_events_pYYYYMMDD".
[[nodiscard]] std::string DayPartitionName(std::chrono::sys_days day);

}  // namespace ferry::d2c
