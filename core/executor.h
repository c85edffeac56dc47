#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace ferry {

// A fixed set of threads that run posted tasks in order of posting. Blocking
// work (database calls) runs here so that gRPC's callback threads never wait.
// Thread-safe. A task that throws terminates the process: tasks catch and
// report their own errors.
class Executor final {
 public:
  explicit Executor(std::size_t threads);
  ~Executor();  // runs every task already posted, then joins
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Post(std::function<void()> task);
  // Stops accepting tasks, runs what is queued, joins the threads.
  void Stop();
  // How long the oldest task still waiting for a thread has waited; nullopt
  // when none waits. A long wait means every thread is stuck (liveness).
  [[nodiscard]] std::optional<std::chrono::steady_clock::duration> OldestWait() const;

 private:
  void Run();

  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::function<void()>>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ferry
