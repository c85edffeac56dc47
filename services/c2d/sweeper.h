#pragma once

#include <chrono>
#include <memory>

#include <pqxx/connection>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "core/clock.h"
#include "core/periodic.h"
#include "core/pg/advisory_lock.h"

namespace ferry::pg {
class Pool;
}

namespace ferry::d2c {
class EventStore;
}

namespace ferry::c2d {

class FeedbackStore;
class Store;
struct FeedbackMetrics;

struct SweeperOptions {
  std::chrono::milliseconds interval{1000};
  std::chrono::seconds history_retention{
      48 * 3600};   // terminal messages kept, ids known for idempotent sends
  int batch = 500;  // rows per statement
};

struct PassResult {
  std::int64_t released = 0;          // lapsed locks back to Enqueued
  std::int64_t expired = 0;           // messages dead-lettered at expiry
  std::int64_t trimmed = 0;           // terminal messages past history retention
  std::int64_t feedback_expired = 0;  // feedback records past their TTL
};

// The `sweeper` role: one active sweeper across replicas (a session advisory
// lock on a dedicated connection, re-checked each pass). Each pass returns
// lapsed locks to Enqueued and NOTIFYs, dead-letters expired messages with
// their Expired feedback, deletes feedback past its TTL, trims terminal
// messages after the history retention. (The event store's day partitions
// belong to the d2c role: consumers/d2c/maintenance.h.)
// Every statement is idempotent and bounded (FOR UPDATE SKIP LOCKED LIMIT
// batch): two sweepers at once double nothing. Metrics:
// ferry_sweeper_passes_total, ferry_sweeper_pass_duration_seconds,
// ferry_sweeper_rows_total{action}, ferry_sweeper_last_pass_timestamp_seconds,
// ferry_sweeper_active.
class Sweeper final {
 public:
  Sweeper(pg::Pool& pool, Store& store, FeedbackStore& feedback, const Clock& clock,
          SweeperOptions options, prometheus::Registry& registry,
          FeedbackMetrics& feedback_metrics);
  ~Sweeper();
  Sweeper(const Sweeper&) = delete;
  Sweeper& operator=(const Sweeper&) = delete;

  void Start() { worker_.Start(); }
  void Stop();
  [[nodiscard]] const PeriodicWorker& worker() const { return worker_; }
  // One pass, without the lock (tests run two at once).
  PassResult Pass();

 private:
  std::chrono::milliseconds Tick();

  Store& store_;
  FeedbackStore& feedback_;
  const Clock& clock_;
  const SweeperOptions options_;
  FeedbackMetrics& feedback_metrics_;
  prometheus::Counter& passes_;
  prometheus::Histogram& duration_;
  prometheus::Family<prometheus::Counter>& rows_;
  prometheus::Gauge& last_pass_;
  prometheus::Gauge& active_;
  pg::Leadership leadership_;
  PeriodicWorker worker_;  // last: stops first
};

}  // namespace ferry::c2d
