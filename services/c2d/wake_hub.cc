#include "services/c2d/wake_hub.h"

#include <vector>

#include "core/pg/listener.h"

namespace ferry::c2d {

WakeHub::WakeHub() : worker_("wake hub", [this] { return Tick(); }) {
  worker_.Start();
}

WakeHub::~WakeHub() {
  Shutdown();
  worker_.Stop();
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
  worker_.Wake();
  return id;
}

void WakeHub::WakeBy(std::uint64_t id, Clock::time_point at) {
  std::lock_guard lock(mutex_);
  const auto it = watchers_.find(id);
  if (it == watchers_.end() || at >= it->second.at) return;
  by_time_.erase({it->second.at, id});
  it->second.at = at;
  by_time_.emplace(at, id);
  worker_.Wake();
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
  if (any) worker_.Wake();
}

void WakeHub::NotifyAll() {
  std::lock_guard lock(mutex_);
  for (auto& [id, w] : watchers_) {
    if (!w.fire) w.fire = Why::kNotified;
  }
  worker_.Wake();
}

void WakeHub::Shutdown() {
  std::lock_guard lock(mutex_);
  shutdown_ = true;
  for (auto& [id, w] : watchers_) w.fire = Why::kShutdown;
  worker_.Wake();
}

std::size_t WakeHub::watching() const {
  std::lock_guard lock(mutex_);
  return watchers_.size();
}

std::chrono::milliseconds WakeHub::Tick() {
  std::vector<std::pair<Callback, Why>> due;
  std::optional<Clock::time_point> next;
  {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
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
    if (!by_time_.empty()) next = by_time_.begin()->first;
  }
  for (auto& [callback, why] : due) callback(why);
  if (!due.empty()) return std::chrono::milliseconds(0);  // a callback may have added more
  // A Watch, WakeBy or Notify after this point wakes the worker early.
  if (!next) return std::chrono::hours(1);
  const auto until = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now());
  return std::max(until, std::chrono::milliseconds(0));
}

}  // namespace ferry::c2d
