#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/registry.h>

namespace ferry::pg {

class Pool;

// The process's one LISTEN connection (pooled connections carry no session
// state). Subscribers register before Start(); callbacks run on the
// listener's thread and must be quick. After every (re)connect and every
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

 private:
  void Run();
  void Resync();

  Pool& pool_;
  prometheus::Counter& reconnects_;
  prometheus::Counter& notifications_;
  std::map<std::string, std::vector<std::function<void(const std::string&)>>> subscribers_;
  std::vector<std::function<void()>> resyncs_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

}  // namespace ferry::pg
