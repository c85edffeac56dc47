#include "core/pg/pool_metrics.h"

#include "core/metrics.h"

namespace ferry::pg {

Pool::Metrics::Metrics(prometheus::Registry* given)
    : own(given != nullptr ? nullptr : std::make_shared<prometheus::Registry>()),
      registry(given != nullptr ? *given : *own),
      idle(metrics::Gauge(registry, "ferry_db_pool_connections",
                          "PostgreSQL pool connections by state.", {{"state", "idle"}})),
      in_use(metrics::Gauge(registry, "ferry_db_pool_connections",
                            "PostgreSQL pool connections by state.", {{"state", "in_use"}})),
      waiting(metrics::Gauge(registry, "ferry_db_pool_waiting_acquires",
                             "Callers waiting for a pooled PostgreSQL connection.")),
      max_connections(metrics::Gauge(registry, "ferry_db_pool_max_connections",
                                     "Configured size of the PostgreSQL pool.")),
      opened(metrics::Counter(registry, "ferry_db_pool_connections_opened_total",
                              "PostgreSQL connections opened by the pool.")),
      closed_broken(metrics::Counter(registry, "ferry_db_pool_connections_closed_total",
                                     "PostgreSQL pool connections closed, by reason.",
                                     {{"reason", "broken"}})),
      closed_discarded(metrics::Counter(registry, "ferry_db_pool_connections_closed_total",
                                        "PostgreSQL pool connections closed, by reason.",
                                        {{"reason", "discarded"}})),
      connect_errors(metrics::Counter(registry, "ferry_db_pool_connect_errors_total",
                                      "Failed attempts to open a PostgreSQL connection.")),
      acquire_timeouts(
          metrics::Counter(registry, "ferry_db_pool_acquire_timeouts_total",
                           "Acquires refused because no connection freed up in time.")),
      retries(metrics::CounterFamily(registry, "ferry_db_transaction_retries_total",
                                     "PostgreSQL transactions retried, by reason.")) {}

}  // namespace ferry::pg
