#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/registry.h>

#include "core/periodic.h"

namespace ferry::pg {

class Pool;

// The process's one LISTEN connection (pooled connections carry no session
// state). Subscribers register before Start(); callbacks run on the
// listener's worker thread (a PeriodicWorker, "pg listener") and must be
// quick. After every (re)connect and every
// loss of the connection, each resync callback runs: notifications may have
// been missed, so subscribers re-query or drop what they cached.
// Metrics: ferry_pg_listener_reconnects_total, ferry_pg_notifications_total.
class Listener final {
 public:
  Listener(Pool& pool, prometheus::Registry& registry);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  void Subscribe(const std::string& channel,
                 std::function<void(const std::string& payload)> on_notify);
  void OnResync(std::function<void()> resync);
  void Start();
  void Stop();
  // True while LISTENing on a live connection.
  [[nodiscard]] bool connected() const { return connected_.load(); }
  [[nodiscard]] const PeriodicWorker& worker() const { return worker_; }

 private:
  struct Session;  // the connection and its LISTENs

  // (Re)connects when needed, then waits up to 200 ms for notifications.
  std::chrono::milliseconds Tick();
  void Resync();

  Pool& pool_;
  prometheus::Counter& reconnects_;
  prometheus::Counter& notifications_;
  std::map<std::string, std::vector<std::function<void(const std::string&)>>> subscribers_;
  std::vector<std::function<void()>> resyncs_;
  std::atomic<bool> connected_{false};
  std::unique_ptr<Session> session_;  // the worker's alone
  std::chrono::milliseconds backoff_{100};
  PeriodicWorker worker_;  // last: stopped before the members it uses go
};

}  // namespace ferry::pg
