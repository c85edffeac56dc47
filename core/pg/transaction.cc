#include "core/pg/transaction.h"

#include <random>
#include <thread>

#include <pqxx/except>
#include <pqxx/nontransaction>

#include "core/error.h"
#include "core/log.h"
#include "core/pg/copy.h"
#include "core/pg/pool_metrics.h"

namespace ferry::pg {
namespace {

enum class Outcome { kRetry, kRetryOnNewConnection, kRethrow, kRethrowAndDiscard, kInDoubt };

struct Classified {
  Outcome outcome;
  std::string_view reason;
};

// What to do with an exception that escaped a transaction attempt.
Classified Classify(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const Error&) {
    return {Outcome::kRethrow, ""};
  } catch (const pqxx::serialization_failure&) {
    return {Outcome::kRetry, "serialization_failure"};
  } catch (const pqxx::deadlock_detected&) {
    return {Outcome::kRetry, "deadlock"};
  } catch (const pqxx::statement_completion_unknown&) {
    // The connection broke mid-statement; the transaction never committed.
    return {Outcome::kRetryOnNewConnection, "connection_lost"};
  } catch (const pqxx::in_doubt_error&) {
    return {Outcome::kInDoubt, ""};
  } catch (const pqxx::broken_connection&) {
    return {Outcome::kRetryOnNewConnection, "connection_lost"};
  } catch (const pqxx::sql_error& e) {
    const std::string& state = e.sqlstate();
    // Class 08 (connection exception) and 57 (operator intervention: admin
    // shutdown, crash recovery, cannot connect now).
    if (state.rfind("08", 0) == 0 || state.rfind("57", 0) == 0) {
      return {Outcome::kRetryOnNewConnection, "connection_lost"};
    }
    return {Outcome::kRethrow, ""};
  } catch (...) {
    return {Outcome::kRethrowAndDiscard, ""};
  }
}

std::chrono::milliseconds Backoff(const TxOptions& options, int attempt) {
  thread_local std::mt19937 rng{std::random_device{}()};
  auto ceiling = options.base_backoff * (1 << std::min(attempt, 10));
  ceiling = std::min(ceiling, options.max_backoff);
  std::uniform_int_distribution<long> jitter(ceiling.count() / 2, ceiling.count());
  return std::chrono::milliseconds(jitter(rng));
}

void RunOnce(pqxx::connection& conn, const std::function<void(pqxx::dbtransaction&)>& body,
             Isolation isolation) {
  switch (isolation) {
    case Isolation::kReadCommitted: {
      pqxx::transaction<pqxx::read_committed> tx(conn);
      body(tx);
      tx.commit();
      return;
    }
    case Isolation::kRepeatableRead: {
      pqxx::transaction<pqxx::repeatable_read> tx(conn);
      body(tx);
      tx.commit();
      return;
    }
    case Isolation::kSerializable: {
      pqxx::transaction<pqxx::serializable> tx(conn);
      body(tx);
      tx.commit();
      return;
    }
  }
}

// The retry loop shared by transactions and autocommit statements: `run_once`
// runs the caller's body once on a leased connection.
void RunAttempts(Pool& pool, const std::function<void(pqxx::connection&)>& run_once,
                 const TxOptions& options) {
  static const auto logger = log::Get("pg");
  std::string last_error;
  for (int attempt = 0; attempt < options.max_attempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(Backoff(options, attempt - 1));
    std::optional<Lease> lease;
    internal::OpenCopies() = 0;
    try {
      lease.emplace(pool.Acquire());
      run_once(**lease);
      return;
    } catch (const std::exception& e) {
      const Classified c = Classify(std::current_exception());
      // A COPY cut off half-way may leave the session in COPY mode.
      const bool copy_cut = internal::OpenCopies() > 0;
      internal::OpenCopies() = 0;
      if (copy_cut && lease) lease->Discard();
      switch (c.outcome) {
        case Outcome::kRethrow:
          throw;
        case Outcome::kRethrowAndDiscard:
          if (lease) lease->Discard();
          throw;
        case Outcome::kInDoubt:
          if (lease) lease->Discard();
          logger->error("transaction outcome unknown: connection lost during commit error=\"{}\"",
                        e.what());
          throw Error(
              Reason::kServiceUnavailable,
              std::string("database connection lost during commit; outcome unknown: ") + e.what());
        case Outcome::kRetryOnNewConnection:
          if (lease) lease->Discard();
          [[fallthrough]];
        case Outcome::kRetry:
          last_error = e.what();
          pool.metrics().retries.Add({{"reason", std::string(c.reason)}}).Increment();
          logger->debug("transaction retry attempt={} reason={} error=\"{}\"", attempt + 1,
                        c.reason, last_error);
          break;
      }
    }
  }
  while (!last_error.empty() && last_error.back() == '\n') last_error.pop_back();
  throw Error(Reason::kServiceUnavailable, "database unavailable after " +
                                               std::to_string(options.max_attempts) +
                                               " attempts: " + last_error);
}

}  // namespace

void RunTransaction(Pool& pool, const std::function<void(pqxx::dbtransaction&)>& body,
                    const TxOptions& options) {
  RunAttempts(
      pool, [&](pqxx::connection& conn) { RunOnce(conn, body, options.isolation); }, options);
}

void RunAutocommit(Pool& pool, const std::function<void(pqxx::transaction_base&)>& body,
                   const TxOptions& options) {
  RunAttempts(
      pool,
      [&](pqxx::connection& conn) {
        pqxx::nontransaction tx(conn);
        body(tx);
      },
      options);
}

}  // namespace ferry::pg
