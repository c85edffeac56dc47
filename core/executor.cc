#include "core/executor.h"

#include <stdexcept>

namespace ferry {

Executor::Executor(std::size_t threads) {
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

Executor::~Executor() {
  Stop();
}

void Executor::Post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw std::logic_error("Executor::Post after Stop");
    tasks_.emplace_back(std::chrono::steady_clock::now(), std::move(task));
  }
  ready_.notify_one();
}

void Executor::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::optional<std::chrono::steady_clock::duration> Executor::OldestWait() const {
  std::lock_guard lock(mutex_);
  if (tasks_.empty()) return std::nullopt;
  return std::chrono::steady_clock::now() - tasks_.front().first;
}

void Executor::Run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      task = std::move(tasks_.front().second);
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace ferry
