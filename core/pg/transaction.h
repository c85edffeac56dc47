#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include <pqxx/transaction>

#include "core/pg/pool.h"

namespace ferry::pg {

enum class Isolation { kReadCommitted, kRepeatableRead, kSerializable };

struct TxOptions {
  Isolation isolation = Isolation::kReadCommitted;
  // Attempts in all, for serialization failures, deadlocks and lost
  // connections (before commit). Backoff doubles from base_backoff, with
  // jitter, up to max_backoff.
  int max_attempts = 5;
  std::chrono::milliseconds base_backoff{20};
  std::chrono::milliseconds max_backoff{1000};
};

// Runs `body` in a transaction on a pooled connection and commits it.
// Retries the whole body on serialization failures, deadlocks and broken
// connections; the body must therefore have no effects outside the
// transaction. A connection that broke, whose COPY failed half-way, or that
// saw any error other than a server-reported SQL error or a ferry::Error is
// closed rather than returned to the pool.
// Throws: ferry::Error from the body as is; pqxx::sql_error from the body as
// is (the caller's store maps what it expects); ferry::Error
// (kServiceUnavailable) when attempts run out or a commit's outcome is
// unknown.
void RunTransaction(Pool& pool, const std::function<void(pqxx::dbtransaction&)>& body,
                    const TxOptions& options = {});

namespace internal {
// Calls `run` with a body that runs `fn` on the transaction it is given and
// keeps what `fn` returns, then returns that (or nothing for a void `fn`).
template <typename Tx, typename Run, typename Fn>
auto WithResult(Run&& run, Fn&& fn) {
  using Result = std::invoke_result_t<Fn&, Tx&>;
  if constexpr (std::is_void_v<Result>) {
    run(std::function<void(Tx&)>(fn));
  } else {
    std::optional<Result> result;
    run(std::function<void(Tx&)>([&](Tx& tx) { result.emplace(fn(tx)); }));
    return std::move(*result);
  }
}
}  // namespace internal

// Runs `body` on a pooled connection without BEGIN/COMMIT: each statement
// commits on its own, a round trip fewer on each side of it. For a body of
// one statement (a function call, a CTE) whose repetition is harmless: a
// connection lost mid-statement leaves its outcome unknown, and the body is
// retried on a new connection like a transaction's. Same errors as
// RunTransaction.
void RunAutocommit(Pool& pool, const std::function<void(pqxx::transaction_base&)>& body,
                   const TxOptions& options = {});

template <typename Fn>
auto WithAutocommit(Pool& pool, Fn&& fn, const TxOptions& options = {}) {
  return internal::WithResult<pqxx::transaction_base>(
      [&](const auto& body) { RunAutocommit(pool, body, options); }, std::forward<Fn>(fn));
}

// Runs `sql` as the prepared statement `name` on the transaction's
// connection: parsed and planned once per connection (PostgreSQL then keeps
// a generic plan), not on every call. The first use on a connection
// registers it (one more round trip, once). `name` must always come with the
// same `sql`.
template <typename... Args>
pqxx::result ExecPrepared(pqxx::transaction_base& tx, const std::string& name,
                          const std::string& sql, Args&&... args) {
  tx.conn().prepare(name, sql);  // a map lookup once known
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

template <typename Fn>
auto WithTransaction(Pool& pool, Fn&& fn, const TxOptions& options = {}) {
  return internal::WithResult<pqxx::dbtransaction>(
      [&](const auto& body) { RunTransaction(pool, body, options); }, std::forward<Fn>(fn));
}

}  // namespace ferry::pg
