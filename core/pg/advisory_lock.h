#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include <pqxx/connection>
#include <pqxx/transaction_base>

namespace ferry::pg {

class Pool;

// Every PostgreSQL advisory lock Ferry takes, in one place so that no two
// uses share a key by accident. The key is the name's eight ASCII bytes as
// a big-endian 64-bit integer ("ferry.sw" -> 0x66657272792e7377), which
// `SELECT * FROM pg_locks WHERE locktype = 'advisory'` shows as
// classid/objid.
enum class AdvisoryLock {
  kMigrations,          // "ferry.mg": one replica applies migrations at a time
  kDayPartitions,       // "ferry.dy": creating and dropping d2c_events' days
  kLifecyclePublisher,  // "ferry.lc": one lifecycle-outbox publisher at a time
  kSweeper,             // "ferry.sw": the active C2D sweeper
};

[[nodiscard]] std::string_view AdvisoryLockName(AdvisoryLock lock);
[[nodiscard]] std::int64_t AdvisoryLockKey(AdvisoryLock lock);

// Transaction-scoped: released at commit or rollback.
void LockForTransaction(pqxx::transaction_base& tx, AdvisoryLock lock);
[[nodiscard]] bool TryLockForTransaction(pqxx::transaction_base& tx, AdvisoryLock lock);

// Session-scoped, on a connection of the caller's (which must not be a
// pooled one: the lock lives as long as the session). Lock polls every
// 100 ms rather than blocking in pg_advisory_lock, logging while it waits:
// a session blocked there holds a snapshot that CREATE INDEX CONCURRENTLY
// in the holder's work would wait for.
void LockForSession(pqxx::connection& conn, AdvisoryLock lock);
void UnlockForSession(pqxx::connection& conn, AdvisoryLock lock) noexcept;

// Leader election among replicas: whoever holds the session lock on its own
// dedicated connection leads until that connection breaks or Resign is
// called. Hold() is called before each round of the leader's work: it
// checks that the lock is still held (a broken connection loses it) and
// tries to take it otherwise. Not thread-safe: one background loop owns it.
class Leadership final {
 public:
  Leadership(const Pool& pool, AdvisoryLock lock);
  ~Leadership();
  Leadership(const Leadership&) = delete;
  Leadership& operator=(const Leadership&) = delete;

  // Whether this replica leads now. Never throws: an unreachable database
  // means not leading (and the next call tries again).
  [[nodiscard]] bool Hold();
  // Gives the lock up (closing the session).
  void Resign();

 private:
  const Pool& pool_;
  const AdvisoryLock lock_;
  std::unique_ptr<pqxx::connection> connection_;
};

}  // namespace ferry::pg
