#include "services/health/readiness.h"

#include <optional>

#include <fmt/format.h>
#include <prometheus/gauge.h>

#include "core/log.h"
#include "core/metrics.h"

namespace ferry::health {

ReadinessMonitor::ReadinessMonitor(pg::Pool& pool, const pg::Migrator& migrator,
                                   std::function<void(bool)> on_change,
                                   std::chrono::milliseconds interval,
                                   prometheus::Registry& registry,
                                   std::function<std::string()> extra_check)
    : pool_(pool),
      migrator_(migrator),
      on_change_(std::move(on_change)),
      extra_check_(std::move(extra_check)),
      interval_(interval),
      gauge_(metrics::Gauge(
          registry, "ferry_ready",
          "1 while this replica is ready to serve (database reachable and migrated).")),
      worker_("readiness check", [this] { return Pass(); }) {}

ReadinessMonitor::~ReadinessMonitor() {
  Stop();
}

std::string ReadinessMonitor::Check() {
  // Two tries: the first may meet an idle connection that died with a
  // database restart; it is discarded and the second opens a fresh one.
  std::string why;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::optional<pg::Lease> lease;
    try {
      lease.emplace(pool_.Acquire());
      const pg::SchemaStatus status = migrator_.Status(**lease);
      if (status.ready()) {
        lease.reset();
        return extra_check_ ? extra_check_() : "";
      }
      if (!status.changed.empty()) {
        return fmt::format("applied migrations changed: {}", fmt::join(status.changed, ", "));
      }
      return fmt::format("migrations pending: {}", fmt::join(status.pending, ", "));
    } catch (const std::exception& e) {
      if (lease) lease->Discard();
      why = fmt::format("database unreachable: {}", e.what());
      while (!why.empty() && why.back() == '\n') why.pop_back();
    }
  }
  return why;
}

std::chrono::milliseconds ReadinessMonitor::Pass() {
  static const auto logger = log::Get("health");
  const std::string why = Check();
  const bool ready = why.empty();
  ready_.store(ready);
  gauge_.Set(ready ? 1 : 0);
  if (!last_ || *last_ != ready || (!ready && why != last_why_)) {
    if (ready) {
      logger->info("readiness SERVING");
    } else {
      logger->warn("readiness NOT_SERVING reason=\"{}\"", why);
    }
    if (!last_ || *last_ != ready) on_change_(ready);
    last_ = ready;
    last_why_ = why;
  }
  return interval_;
}

}  // namespace ferry::health
