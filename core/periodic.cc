#include "core/periodic.h"

#include "core/log.h"

namespace ferry {

PeriodicWorker::PeriodicWorker(std::string name, Tick tick, std::chrono::milliseconds retry)
    : name_(std::move(name)), tick_(std::move(tick)), retry_(retry) {}

PeriodicWorker::~PeriodicWorker() {
  Stop();
}

void PeriodicWorker::Start() {
  thread_ = std::thread([this] { Run(); });
}

void PeriodicWorker::Wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  wake_.notify_all();
}

void PeriodicWorker::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<std::chrono::steady_clock::duration> PeriodicWorker::Busy() const {
  const auto since = busy_since_.load();
  if (since == 0) return std::nullopt;
  return std::chrono::steady_clock::now().time_since_epoch() -
         std::chrono::steady_clock::duration(since);
}

void PeriodicWorker::Run() {
  static const auto logger = log::Get("worker");
  while (!stopping_) {
    std::chrono::milliseconds wait = retry_;
    busy_since_ = std::max<std::chrono::steady_clock::rep>(
        1, std::chrono::steady_clock::now().time_since_epoch().count());
    try {
      wait = tick_();
    } catch (const std::exception& e) {
      logger->warn("{} failed, retrying in {} ms error=\"{}\"", name_, retry_.count(), e.what());
    }
    busy_since_ = 0;
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, wait, [this] { return woken_ || stopping_.load(); });
    woken_ = false;
  }
}

}  // namespace ferry
