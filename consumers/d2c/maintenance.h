#pragma once

#include <chrono>
#include <functional>

#include "core/clock.h"
#include "core/periodic.h"
#include "store/d2c/event_store.h"

namespace ferry::d2c {

// Keeps the event store's day partitions: creates today - retention through
// today + ahead, drops days before today - retention, every `interval`, and
// retries every second after a failure (the database may be down or not yet
// migrated). Calls `on_first_success` once, on its thread, after the first
// pass that worked (the d2c consumer starts then).
class Maintenance final {
 public:
  Maintenance(EventStore& store, const Clock& clock, int ahead_days, int retention_days,
              std::chrono::seconds interval, std::function<void()> on_first_success);
  ~Maintenance();
  Maintenance(const Maintenance&) = delete;
  Maintenance& operator=(const Maintenance&) = delete;

  void Start() { worker_.Start(); }
  void Stop() { worker_.Stop(); }
  [[nodiscard]] const PeriodicWorker& worker() const { return worker_; }

 private:
  std::chrono::milliseconds Pass();

  EventStore& store_;
  const Clock& clock_;
  int ahead_days_;
  int retention_days_;
  std::chrono::seconds interval_;
  std::function<void()> on_first_success_;
  bool succeeded_once_ = false;
  PeriodicWorker worker_;  // last: stops first
};

}  // namespace ferry::d2c
