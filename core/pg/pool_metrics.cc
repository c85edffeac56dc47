#include "core/pg/pool_metrics.h"

namespace ferry::pg {
namespace {

prometheus::Registry& Pick(prometheus::Registry* given,
                           std::shared_ptr<prometheus::Registry>& own) {
  if (given != nullptr) return *given;
  own = std::make_shared<prometheus::Registry>();
  return *own;
}

}  // namespace

Pool::Metrics::Metrics(prometheus::Registry* registry)
    : own(),
      idle(prometheus::BuildGauge()
               .Name("ferry_db_pool_connections")
               .Help("PostgreSQL pool connections by state.")
               .Register(Pick(registry, own))
               .Add({{"state", "idle"}})),
      in_use(prometheus::BuildGauge()
                 .Name("ferry_db_pool_connections")
                 .Help("PostgreSQL pool connections by state.")
                 .Register(registry ? *registry : *own)
                 .Add({{"state", "in_use"}})),
      waiting(prometheus::BuildGauge()
                  .Name("ferry_db_pool_waiting_acquires")
                  .Help("Callers waiting for a pooled PostgreSQL connection.")
                  .Register(registry ? *registry : *own)
                  .Add({})),
      max_connections(prometheus::BuildGauge()
                          .Name("ferry_db_pool_max_connections")
                          .Help("Configured size of the PostgreSQL pool.")
                          .Register(registry ? *registry : *own)
                          .Add({})),
      opened(prometheus::BuildCounter()
                 .Name("ferry_db_pool_connections_opened_total")
                 .Help("PostgreSQL connections opened by the pool.")
                 .Register(registry ? *registry : *own)
                 .Add({})),
      closed_broken(prometheus::BuildCounter()
                        .Name("ferry_db_pool_connections_closed_total")
                        .Help("PostgreSQL pool connections closed, by reason.")
                        .Register(registry ? *registry : *own)
                        .Add({{"reason", "broken"}})),
      closed_discarded(prometheus::BuildCounter()
                           .Name("ferry_db_pool_connections_closed_total")
                           .Help("PostgreSQL pool connections closed, by reason.")
                           .Register(registry ? *registry : *own)
                           .Add({{"reason", "discarded"}})),
      connect_errors(prometheus::BuildCounter()
                         .Name("ferry_db_pool_connect_errors_total")
                         .Help("Failed attempts to open a PostgreSQL connection.")
                         .Register(registry ? *registry : *own)
                         .Add({})),
      acquire_timeouts(prometheus::BuildCounter()
                           .Name("ferry_db_pool_acquire_timeouts_total")
                           .Help("Acquires refused because no connection freed up in time.")
                           .Register(registry ? *registry : *own)
                           .Add({})),
      retries(prometheus::BuildCounter()
                  .Name("ferry_db_transaction_retries_total")
                  .Help("PostgreSQL transactions retried, by reason.")
                  .Register(registry ? *registry : *own)) {}

}  // namespace ferry::pg
