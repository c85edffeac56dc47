#include "consumers/d2c/maintenance.h"

#include "core/log.h"

namespace ferry::d2c {

Maintenance::Maintenance(EventStore& store, const Clock& clock, int ahead_days, int retention_days,
                         std::chrono::seconds interval, std::function<void()> on_first_success)
    : store_(store),
      clock_(clock),
      ahead_days_(ahead_days),
      retention_days_(retention_days),
      interval_(interval),
      on_first_success_(std::move(on_first_success)) {}

Maintenance::~Maintenance() { Stop(); }

void Maintenance::Start() { thread_ = std::thread([this] { Run(); }); }

void Maintenance::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Maintenance::Run() {
  static const auto logger = log::Get("d2c");
  bool succeeded_once = false;
  for (;;) {
    std::chrono::seconds wait = interval_;
    try {
      store_.EnsureDays(clock_.Now(), ahead_days_, retention_days_);
      store_.DropExpiredDays(clock_.Now(), retention_days_);
      if (!succeeded_once) {
        succeeded_once = true;
        if (on_first_success_) on_first_success_();
      }
    } catch (const std::exception& e) {
      logger->warn("event store maintenance failed, retrying error=\"{}\"", e.what());
      wait = std::chrono::seconds(1);
    }
    std::unique_lock lock(mutex_);
    if (wake_.wait_for(lock, wait, [this] { return stopping_; })) return;
  }
}

}  // namespace ferry::d2c
