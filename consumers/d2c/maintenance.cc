#include "consumers/d2c/maintenance.h"

namespace ferry::d2c {

Maintenance::Maintenance(EventStore& store, const Clock& clock, int ahead_days, int retention_days,
                         std::chrono::seconds interval, std::function<void()> on_first_success)
    : store_(store),
      clock_(clock),
      ahead_days_(ahead_days),
      retention_days_(retention_days),
      interval_(interval),
      on_first_success_(std::move(on_first_success)),
      worker_("event store maintenance", [this] { return Pass(); }) {}

Maintenance::~Maintenance() {
  Stop();
}

std::chrono::milliseconds Maintenance::Pass() {
  store_.EnsureDays(clock_.Now(), ahead_days_, retention_days_);
  store_.DropExpiredDays(clock_.Now(), retention_days_);
  if (!succeeded_once_) {
    succeeded_once_ = true;
    if (on_first_success_) on_first_success_();
  }
  return interval_;
}

}  // namespace ferry::d2c
