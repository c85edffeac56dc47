#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>

namespace prometheus {
class Registry;
}

namespace ferry::pg {

struct PoolOptions {
  // libpq connection string or URL (sslmode and the like pass through).
  std::string url;
  std::size_t max_size = 8;
  // How long Acquire waits for a free slot before refusing.
  std::chrono::milliseconds acquire_timeout{5000};
  // libpq's connect_timeout, added to the URL unless it names one.
  int connect_timeout_seconds = 5;
};

class Pool;

// A connection on loan from the pool; returned when destroyed. Pooled
// connections carry no session state: no LISTEN, no SET, no advisory locks
// (those belong on a dedicated pqxx::connection).
class Lease final {
 public:
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  ~Lease();

  pqxx::connection& operator*() { return *conn_; }
  pqxx::connection* operator->() { return conn_.get(); }

  // Closes the connection instead of returning it: after a broken connection,
  // a failed COPY or any error that may leave the session in doubt.
  void Discard() { discard_ = true; }

 private:
  friend class Pool;
  Lease(Pool* pool, std::unique_ptr<pqxx::connection> conn);
  Pool* pool_;
  std::unique_ptr<pqxx::connection> conn_;
  bool discard_ = false;
};

// A bounded pool of PostgreSQL connections. Thread-safe. Connections are
// opened lazily; an idle connection found closed is replaced.
class Pool final {
 public:
  // `registry` may be null (no metrics). Metrics: ferry_db_pool_* gauges and
  // counters, ferry_db_transaction_retries_total.
  Pool(PoolOptions options, prometheus::Registry* registry);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Throws pqxx::broken_connection when no connection can be opened, and
  // ferry::Error(kServiceUnavailable) when no slot frees up in time.
  [[nodiscard]] Lease Acquire();

  // Opens a connection outside the pool, for session state (advisory locks,
  // LISTEN). Same URL and connect timeout.
  [[nodiscard]] std::unique_ptr<pqxx::connection> OpenDedicated() const;

  [[nodiscard]] const std::string& url() const { return url_; }

  struct Metrics;
  Metrics& metrics() { return *metrics_; }

 private:
  friend class Lease;
  void Release(std::unique_ptr<pqxx::connection> conn, bool discard);
  void UpdateGaugesLocked();

  PoolOptions options_;
  std::string url_;
  std::unique_ptr<Metrics> metrics_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  std::size_t in_use_ = 0;
  std::size_t waiting_ = 0;
};

// Appends connect_timeout to a libpq URL or key=value string that has none.
[[nodiscard]] std::string WithConnectTimeout(const std::string& url, int seconds);

}  // namespace ferry::pg
