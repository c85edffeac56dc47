#pragma once

#include <chrono>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include "core/periodic.h"

namespace ferry::pg {
class Listener;
class Pool;
}  // namespace ferry::pg

namespace ferry::d2c {
class EndpointSink;
}

namespace ferry::registry {

// Publishes device lifecycle notifications (docs/routing.md) to the
// D2C topic, where they are landed and routed like device messages (routes
// with source DeviceLifecycleEvents). A trigger writes each one into
// device_lifecycle_outbox in the registry change's own transaction
// (migration 0005); this drains the outbox in id order, one replica at a
// time (an advisory lock), deleting rows once Kafka acknowledged them: at
// least once, never lost. Woken by NOTIFY `ferry_lifecycle`, polled each
// second as a safety net. Metric: ferry_lifecycle_events_published_total.
class LifecyclePublisher final {
 public:
  LifecyclePublisher(pg::Pool& pool, d2c::EndpointSink& sink, std::string topic,
                     std::string hub_name, prometheus::Registry& registry);
  ~LifecyclePublisher();
  LifecyclePublisher(const LifecyclePublisher&) = delete;
  LifecyclePublisher& operator=(const LifecyclePublisher&) = delete;

  void Attach(pg::Listener& listener);
  void Start() { worker_.Start(); }
  void Stop() { worker_.Stop(); }
  [[nodiscard]] const PeriodicWorker& worker() const { return worker_; }

  // Publishes what the outbox holds (at most `limit` rows); returns how many.
  std::size_t PublishOnce(std::size_t limit = 500);

 private:
  std::chrono::milliseconds Tick();

  pg::Pool& pool_;
  d2c::EndpointSink& sink_;
  const std::string topic_;
  const std::string hub_name_;
  prometheus::Counter& published_;
  PeriodicWorker worker_;  // last: stops first
};

}  // namespace ferry::registry
