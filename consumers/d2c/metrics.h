#pragma once

#include <cstdint>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace ferry::d2c {

// The D2C consumer's metrics (consumers/README.md lists them).
struct Metrics {
  explicit Metrics(prometheus::Registry& r);

  // A partition label.
  static std::string P(std::int32_t p) { return std::to_string(p); }

  prometheus::Family<prometheus::Counter>& events;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Family<prometheus::Counter>& dead_letters;
  prometheus::Histogram& batch_records;
  prometheus::Histogram& batch_seconds;
  prometheus::Family<prometheus::Gauge>& next_offset;
  prometheus::Family<prometheus::Gauge>& lag;
  prometheus::Family<prometheus::Gauge>& owned;
  prometheus::Family<prometheus::Counter>& rebalances;
  prometheus::Counter& fenced;
  prometheus::Counter& claim_retries;
  prometheus::Counter& landing_retries;
  prometheus::Family<prometheus::Counter>& routed;
  prometheus::Counter& dropped;
  prometheus::Family<prometheus::Counter>& oversized;
  prometheus::Family<prometheus::Counter>& undefined;
  prometheus::Counter& replay_skipped;
  prometheus::Counter& resets;
  prometheus::Family<prometheus::Counter>& lost;
  prometheus::Family<prometheus::Gauge>& stopped;
  prometheus::Gauge& buffered;
  prometheus::Gauge& route_version;
};

}  // namespace ferry::d2c
