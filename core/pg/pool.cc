#include "core/pg/pool.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "core/error.h"
#include "core/log.h"
#include "core/pg/pool_metrics.h"

namespace ferry::pg {

std::string WithConnectTimeout(const std::string& url, int seconds) {
  if (url.find("connect_timeout") != std::string::npos || seconds <= 0) return url;
  const bool is_uri = url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
  if (!is_uri) return url + (url.empty() ? "" : " ") + "connect_timeout=" + std::to_string(seconds);
  return url + (url.find('?') == std::string::npos ? "?" : "&") +
         "connect_timeout=" + std::to_string(seconds);
}

Lease::Lease(Pool* pool, std::unique_ptr<pqxx::connection> conn)
    : pool_(pool), conn_(std::move(conn)) {}

Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), conn_(std::move(other.conn_)), discard_(other.discard_) {
  other.pool_ = nullptr;
}

Lease::~Lease() {
  if (pool_ != nullptr && conn_) pool_->Release(std::move(conn_), discard_);
}

Pool::Pool(PoolOptions options, prometheus::Registry* registry)
    : options_(std::move(options)),
      url_(WithConnectTimeout(options_.url, options_.connect_timeout_seconds)),
      metrics_(std::make_unique<Metrics>(registry)) {
  metrics_->max_connections.Set(static_cast<double>(options_.max_size));
}

Pool::~Pool() = default;

std::unique_ptr<pqxx::connection> Pool::OpenDedicated() const {
  auto conn = std::make_unique<pqxx::connection>(url_);
  // libpqxx 6 would otherwise reconnect silently and lose session state
  // (advisory locks, LISTEN); deprecated, but still the only way to say so.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
  return conn;
}

Lease Pool::Acquire() {
  std::unique_lock lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + options_.acquire_timeout;
  ++waiting_;
  UpdateGaugesLocked();
  while (idle_.empty() && in_use_ >= options_.max_size) {
    if (freed_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        in_use_ >= options_.max_size) {
      --waiting_;
      metrics_->acquire_timeouts.Increment();
      UpdateGaugesLocked();
      throw Error(Reason::kServiceUnavailable,
                  "no database connection free within " +
                      std::to_string(options_.acquire_timeout.count()) + " ms (pool size " +
                      std::to_string(options_.max_size) + ")");
    }
  }
  --waiting_;
  ++in_use_;
  std::unique_ptr<pqxx::connection> conn;
  while (!idle_.empty() && !conn) {
    conn = std::move(idle_.back());
    idle_.pop_back();
    if (!conn->is_open()) {
      metrics_->closed_broken.Increment();
      conn.reset();
    }
  }
  UpdateGaugesLocked();
  if (conn) return Lease(this, std::move(conn));

  lock.unlock();
  try {
    conn = OpenDedicated();
  } catch (...) {
    lock.lock();
    --in_use_;
    metrics_->connect_errors.Increment();
    UpdateGaugesLocked();
    freed_.notify_one();
    throw;
  }
  metrics_->opened.Increment();
  return Lease(this, std::move(conn));
}

void Pool::Release(std::unique_ptr<pqxx::connection> conn, bool discard) {
  std::lock_guard lock(mutex_);
  --in_use_;
  if (discard || !conn->is_open()) {
    (discard ? metrics_->closed_discarded : metrics_->closed_broken).Increment();
    conn.reset();
  } else {
    idle_.push_back(std::move(conn));
  }
  UpdateGaugesLocked();
  freed_.notify_one();
}

void Pool::UpdateGaugesLocked() {
  metrics_->idle.Set(static_cast<double>(idle_.size()));
  metrics_->in_use.Set(static_cast<double>(in_use_));
  metrics_->waiting.Set(static_cast<double>(waiting_));
}

}  // namespace ferry::pg
