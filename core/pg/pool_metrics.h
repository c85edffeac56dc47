#pragma once

#include <memory>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "core/pg/pool.h"

namespace ferry::pg {

// The pool's metrics, declared in one place. With no registry given they are
// kept in a private one, so the pool's code needs no null checks.
struct Pool::Metrics {
  explicit Metrics(prometheus::Registry* registry);

  std::shared_ptr<prometheus::Registry> own;  // null when a registry was given
  prometheus::Registry& registry;             // the given one, or *own
  prometheus::Gauge& idle;
  prometheus::Gauge& in_use;
  prometheus::Gauge& waiting;
  prometheus::Gauge& max_connections;
  prometheus::Counter& opened;
  prometheus::Counter& closed_broken;
  prometheus::Counter& closed_discarded;
  prometheus::Counter& connect_errors;
  prometheus::Counter& acquire_timeouts;
  prometheus::Family<prometheus::Counter>& retries;
};

}  // namespace ferry::pg
