#include "services/c2d/wake_hub.h"

#include <vector>

#include "core/pg/listener.h"

namespace ferry::c2d {

WakeHub::WakeHub() : thread_([this] { Run(); }) {}

WakeHub::~WakeHub() {
  Shutdown();
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void WakeHub::Attach(pg::Listener& listener, const std::string& channel) {
  listener.Subscribe(channel, [this](const std::string& key) { Notify(key); });
  listener.OnResync([this] { NotifyAll(); });
}

std::uint64_t WakeHub::Watch(const std::string& device_id, Clock::time_point at,
                             Callback callback) {
  std::lock_guard lock(mutex_);
  const std::uint64_t id = next_id_++;
  Watcher w{device_id, at, std::move(callback), std::nullopt};
  if (shutdown_) w.fire = Why::kShutdown;
  watchers_.emplace(id, std::move(w));
  by_device_.emplace(device_id, id);
  by_time_.emplace(at, id);
  cv_.notify_all();
  return id;
}

void WakeHub::WakeBy(std::uint64_t id, Clock::time_point at) {
  std::lock_guard lock(mutex_);
  const auto it = watchers_.find(id);
  if (it == watchers_.end() || at >= it->second.at) return;
  by_time_.erase({it->second.at, id});
  it->second.at = at;
  by_time_.emplace(at, id);
  cv_.notify_all();
}

bool WakeHub::Cancel(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  const auto it = watchers_.find(id);
  if (it == watchers_.end()) return false;
  by_time_.erase({it->second.at, id});
  for (auto [b, e] = by_device_.equal_range(it->second.device_id); b != e; ++b) {
    if (b->second == id) {
      by_device_.erase(b);
      break;
    }
  }
  watchers_.erase(it);
  return true;
}

void WakeHub::Notify(const std::string& device_id) {
  std::lock_guard lock(mutex_);
  bool any = false;
  for (auto [b, e] = by_device_.equal_range(device_id); b != e; ++b) {
    auto& w = watchers_.at(b->second);
    if (!w.fire) w.fire = Why::kNotified;
    any = true;
  }
  if (any) cv_.notify_all();
}

void WakeHub::NotifyAll() {
  std::lock_guard lock(mutex_);
  for (auto& [id, w] : watchers_) {
    if (!w.fire) w.fire = Why::kNotified;
  }
  cv_.notify_all();
}

void WakeHub::Shutdown() {
  std::lock_guard lock(mutex_);
  shutdown_ = true;
  for (auto& [id, w] : watchers_) w.fire = Why::kShutdown;
  cv_.notify_all();
}

std::size_t WakeHub::watching() const {
  std::lock_guard lock(mutex_);
  return watchers_.size();
}

void WakeHub::Run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    const auto now = Clock::now();
    std::vector<std::pair<Callback, Why>> due;
    for (auto it = watchers_.begin(); it != watchers_.end();) {
      Watcher& w = it->second;
      std::optional<Why> why = w.fire;
      if (!why && w.at <= now) why = Why::kTime;
      if (!why) {
        ++it;
        continue;
      }
      due.emplace_back(std::move(w.callback), *why);
      by_time_.erase({w.at, it->first});
      for (auto [b, e] = by_device_.equal_range(w.device_id); b != e; ++b) {
        if (b->second == it->first) {
          by_device_.erase(b);
          break;
        }
      }
      it = watchers_.erase(it);
    }
    if (!due.empty()) {
      lock.unlock();
      for (auto& [callback, why] : due) callback(why);
      lock.lock();
      continue;
    }
    if (by_time_.empty()) {
      cv_.wait(lock);
    } else {
      // A copy: the set may change while we wait.
      const Clock::time_point until = by_time_.begin()->first;
      cv_.wait_until(lock, until);
    }
  }
}

}  // namespace ferry::c2d
