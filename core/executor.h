#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
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

 private:
  void Run();

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ferry
