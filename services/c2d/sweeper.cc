#include "services/c2d/sweeper.h"

#include <pqxx/pqxx>

#include "core/log.h"
#include "core/metrics.h"
#include "core/pg/advisory_lock.h"
#include "core/pg/pool.h"
#include "services/c2d/c2d_store.h"
#include "services/c2d/feedback.h"

namespace ferry::c2d {
namespace {

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("sweeper");
  return logger;
}

// Repeats a bounded action until it does less than a full batch.
template <typename Fn>
std::int64_t Drain(int batch, Fn&& action) {
  std::int64_t total = 0;
  for (int round = 0; round < 1000; ++round) {
    const std::int64_t n = action();
    total += n;
    if (n < batch) break;
  }
  return total;
}

}  // namespace

Sweeper::Sweeper(pg::Pool& pool, Store& store, FeedbackStore& feedback, const Clock& clock,
                 SweeperOptions options, prometheus::Registry& r, FeedbackMetrics& feedback_metrics)
    : store_(store),
      feedback_(feedback),
      clock_(clock),
      options_(options),
      feedback_metrics_(feedback_metrics),
      passes_(metrics::Counter(r, "ferry_sweeper_passes_total", "Sweeper passes run here.")),
      duration_(metrics::Histogram(
          r, "ferry_sweeper_pass_duration_seconds", "Time one sweeper pass took.",
          prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10})),
      rows_(
          metrics::CounterFamily(r, "ferry_sweeper_rows_total",
                                 "Rows the sweeper changed, by action (released, expired, trimmed, "
                                 "feedback_expired).")),
      last_pass_(metrics::Gauge(r, "ferry_sweeper_last_pass_timestamp_seconds",
                                "Unix time of the last sweeper pass that ran here (0: never).")),
      active_(metrics::Gauge(r, "ferry_sweeper_active",
                             "1 while this replica holds the sweeper lock.")),
      leadership_(pool, pg::AdvisoryLock::kSweeper),
      worker_(
          "sweeper pass", [this] { return Tick(); }, options_.interval) {}

Sweeper::~Sweeper() {
  Stop();
}

void Sweeper::Stop() {
  worker_.Stop();
  leadership_.Resign();
}

PassResult Sweeper::Pass() {
  const auto started = std::chrono::steady_clock::now();
  const TimePoint now = clock_.Now();
  const int batch = options_.batch;
  PassResult r;
  r.released = Drain(batch, [&] { return store_.ReleaseLapsedLocks(now, batch); });
  r.expired = Drain(batch, [&] {
    const ExpireResult expired = store_.ExpireMessages(now, batch);
    feedback_metrics_.CountWritten(expired.feedback);
    return expired.expired;
  });
  std::int64_t undelivered = 0;
  r.feedback_expired = Drain(batch, [&] {
    std::int64_t open = 0;
    const std::int64_t n = feedback_.ExpireRecords(now, batch, &open);
    undelivered += open;
    return n;
  });
  r.trimmed =
      Drain(batch, [&] { return store_.TrimFinished(now, options_.history_retention, batch); });
  passes_.Increment();
  duration_.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  rows_.Add({{"action", "released"}}).Increment(static_cast<double>(r.released));
  rows_.Add({{"action", "expired"}}).Increment(static_cast<double>(r.expired));
  rows_.Add({{"action", "trimmed"}}).Increment(static_cast<double>(r.trimmed));
  rows_.Add({{"action", "feedback_expired"}}).Increment(static_cast<double>(r.feedback_expired));
  feedback_metrics_.expired.Increment(static_cast<double>(undelivered));
  last_pass_.Set(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  if (r.released + r.expired + r.trimmed + r.feedback_expired > 0) {
    Logger()->info("sweeper pass released={} expired={} trimmed={} feedback_expired={}", r.released,
                   r.expired, r.trimmed, r.feedback_expired);
  }
  return r;
}

std::chrono::milliseconds Sweeper::Tick() {
  const bool held = leadership_.Hold();
  active_.Set(held ? 1 : 0);
  if (held) (void)Pass();  // a failure is logged by the worker and retried after the interval
  return options_.interval;
}

}  // namespace ferry::c2d
