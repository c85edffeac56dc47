#pragma once

#include <chrono>
#include <memory>
#include <mutex>

#include "core/routing/route_set.h"

namespace ferry::pg {
class Listener;
class Pool;
}  // namespace ferry::pg

namespace ferry::d2c {

// The current route set, loaded from PostgreSQL (routing_* tables, migrations
// 0004 and 0005) in one snapshot, so that a version is always whole. A
// NOTIFY on `ferry_routes` (or a listener resync) marks it stale; a slow
// poll reloads it anyway after `max_age`. Thread-safe.
class RouteSource final {
 public:
  explicit RouteSource(pg::Pool& pool,
                       std::chrono::milliseconds max_age = std::chrono::seconds(30));

  // Subscribes to `ferry_routes` before the listener starts.
  void Attach(pg::Listener& listener);

  // The route set to route the next batch against: reloaded first when stale
  // (throws ferry::Error(kServiceUnavailable) if the database is unreachable
  // and nothing was loaded yet; otherwise keeps the last version and retries
  // on the next call).
  [[nodiscard]] std::shared_ptr<const routing::RouteSet> Current();

  void Invalidate();

  // Reads the configuration now. Throws like Current().
  [[nodiscard]] std::shared_ptr<const routing::RouteSet> Load();

 private:
  pg::Pool& pool_;
  const std::chrono::milliseconds max_age_;
  std::mutex mutex_;  // held while loading: one load at a time
  std::shared_ptr<const routing::RouteSet> current_;
  std::chrono::steady_clock::time_point loaded_at_;
  bool stale_ = true;
};

}  // namespace ferry::d2c
