#pragma once

#include <mutex>
#include <optional>
#include <string>

#include <grpcpp/support/server_callback.h>

#include "core/error.h"
#include "core/executor.h"
#include "services/c2d/wake_hub.h"

namespace ferry::c2d {

// A server stream that looks for something to send, sends it, and otherwise
// waits on a WakeHub key without holding a thread: every step runs on the
// executor, one at a time. The derived class answers Poll; this class owns
// the stream's life: it ends on cancel, on a failed write, at hub shutdown
// or when Poll throws ferry::Error, and deletes itself once gRPC is done
// with it and no wake-up or step of its own is outstanding.
template <typename Message>
class PollingWriteReactor : public grpc::ServerWriteReactor<Message> {
 public:
  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mutex_);
      writing_ = false;
      if (!ok) cancelled_ = true;
    }
    Post();
  }

  void OnCancel() override {
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
      if (watch_ != 0 && hub_.Cancel(watch_)) {
        watch_ = 0;
        --outstanding_;
      }
    }
    Post();
  }

  void OnDone() override {
    bool last = false;
    {
      std::lock_guard lock(mutex_);
      done_ = true;
      last = outstanding_ == 0;
    }
    if (last) Destroy();
  }

 protected:
  PollingWriteReactor(WakeHub& hub, Executor& executor, std::string key)
      : hub_(hub), executor_(executor), key_(std::move(key)) {}
  ~PollingWriteReactor() override = default;

  // Fills `out` and returns nullopt to send it; or returns when to look
  // again (a wake-up on the key comes sooner). Throws ferry::Error to end
  // the stream with that error.
  virtual std::optional<WakeHub::Clock::time_point> Poll(Message& out) = 0;
  // The stream's final status for `error` (nullopt: ended normally).
  virtual grpc::Status Status(const std::optional<Error>& error) = 0;

  // Starts the first step: call at the end of the derived constructor.
  void Start() { Post(); }

 private:
  void Destroy() { delete this; }

  void Post() {
    {
      std::lock_guard lock(mutex_);
      ++outstanding_;
    }
    try {
      executor_.Post([this] {
        Step();
        Release();
      });
    } catch (const std::exception&) {  // shutting down: end here
      {
        std::lock_guard lock(mutex_);
        cancelled_ = true;
      }
      Step();
      Release();
    }
  }

  void Release() {
    bool last = false;
    {
      std::lock_guard lock(mutex_);
      --outstanding_;
      last = done_ && outstanding_ == 0;
    }
    if (last) Destroy();
  }

  // Registers the wake-up before looking, so that a notification that
  // arrives while Poll runs is not missed; returns its id.
  std::uint64_t Watch() {
    std::lock_guard lock(mutex_);
    ++outstanding_;
    watch_ =
        hub_.Watch(key_, WakeHub::Clock::now() + std::chrono::hours(1), [this](WakeHub::Why why) {
          {
            std::lock_guard inner(mutex_);
            watch_ = 0;
            if (why == WakeHub::Why::kShutdown) shutdown_ = true;
          }
          Post();
          Release();
        });
    return watch_;
  }

  void Unwatch(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    if (watch_ == id && hub_.Cancel(id)) {
      watch_ = 0;
      --outstanding_;
    }
  }

  void Step() {
    std::lock_guard step(step_mutex_);
    bool end_now = false;
    {
      std::lock_guard lock(mutex_);
      if (finished_ || writing_) return;
      if (cancelled_ || shutdown_) finished_ = end_now = true;
    }
    if (end_now) {
      this->Finish(Status(std::nullopt));
      return;
    }
    std::optional<Error> error;
    const std::uint64_t watch = Watch();
    try {
      message_.Clear();
      const auto wait = Poll(message_);
      if (wait) {
        hub_.WakeBy(watch, *wait);
        return;
      }
      Unwatch(watch);
      {
        std::lock_guard lock(mutex_);
        writing_ = true;
      }
      this->StartWrite(&message_);
      return;
    } catch (const Error& e) {
      error = e;
    } catch (const std::exception&) {
      error =
          Error(Reason::kServiceUnavailable, "the database is unavailable; open the stream again");
    }
    Unwatch(watch);
    {
      std::lock_guard lock(mutex_);
      finished_ = true;
    }
    this->Finish(Status(error));
  }

  WakeHub& hub_;
  Executor& executor_;
  const std::string key_;
  std::mutex step_mutex_;
  std::mutex mutex_;
  int outstanding_ = 0;
  std::uint64_t watch_ = 0;
  bool writing_ = false, cancelled_ = false, shutdown_ = false, finished_ = false, done_ = false;
  Message message_;
};

}  // namespace ferry::c2d
