#include "core/pg/advisory_lock.h"

#include <chrono>
#include <thread>

#include <pqxx/nontransaction>

#include "core/log.h"
#include "core/pg/pool.h"

namespace ferry::pg {
namespace {

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("pg");
  return logger;
}

constexpr std::int64_t KeyOf(std::string_view name) {
  std::uint64_t key = 0;
  for (const char c : name) key = (key << 8) | static_cast<unsigned char>(c);
  return static_cast<std::int64_t>(key);
}

static_assert(KeyOf("ferry.sw") == 0x66657272792e7377LL);

}  // namespace

std::string_view AdvisoryLockName(AdvisoryLock lock) {
  switch (lock) {
    case AdvisoryLock::kMigrations:
      return "ferry.mg";
    case AdvisoryLock::kDayPartitions:
      return "ferry.dy";
    case AdvisoryLock::kLifecyclePublisher:
      return "ferry.lc";
    case AdvisoryLock::kSweeper:
      return "ferry.sw";
  }
  return "ferry.??";
}

std::int64_t AdvisoryLockKey(AdvisoryLock lock) {
  return KeyOf(AdvisoryLockName(lock));
}

void LockForTransaction(pqxx::transaction_base& tx, AdvisoryLock lock) {
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", AdvisoryLockKey(lock));
}

bool TryLockForTransaction(pqxx::transaction_base& tx, AdvisoryLock lock) {
  return tx.exec_params1("SELECT pg_try_advisory_xact_lock($1)", AdvisoryLockKey(lock))[0]
      .as<bool>();
}

void LockForSession(pqxx::connection& conn, AdvisoryLock lock) {
  for (int attempt = 0;; ++attempt) {
    pqxx::nontransaction tx(conn);
    if (tx.exec_params1("SELECT pg_try_advisory_lock($1)", AdvisoryLockKey(lock))[0].as<bool>()) {
      return;
    }
    if (attempt % 50 == 0) {
      Logger()->info("waiting for another replica to release a lock lock=\"{}\"",
                     AdvisoryLockName(lock));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void UnlockForSession(pqxx::connection& conn, AdvisoryLock lock) noexcept {
  try {
    pqxx::nontransaction tx(conn);
    tx.exec_params("SELECT pg_advisory_unlock($1)", AdvisoryLockKey(lock));
  } catch (const std::exception&) {
    // The lock goes with the session when the connection closes.
  }
}

Leadership::Leadership(const Pool& pool, AdvisoryLock lock) : pool_(pool), lock_(lock) {}

Leadership::~Leadership() {
  Resign();
}

bool Leadership::Hold() {
  try {
    if (connection_ && connection_->is_open()) {
      pqxx::nontransaction tx(*connection_);
      // Still ours? (A broken connection loses the lock.)
      const bool held = tx.exec_params1(
                              "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory'"
                              " AND pid = pg_backend_pid() AND granted"
                              " AND ((classid::bigint << 32) | objid::bigint) = $1",
                              AdvisoryLockKey(lock_))[0]
                            .as<bool>();
      if (held) return true;
    } else {
      connection_ = pool_.OpenDedicated();
    }
    pqxx::nontransaction tx(*connection_);
    const bool got =
        tx.exec_params1("SELECT pg_try_advisory_lock($1)", AdvisoryLockKey(lock_))[0].as<bool>();
    if (got) Logger()->info("this replica leads lock=\"{}\"", AdvisoryLockName(lock_));
    return got;
  } catch (const std::exception& e) {
    connection_.reset();
    Logger()->debug("lock not held lock=\"{}\" error=\"{}\"", AdvisoryLockName(lock_), e.what());
    return false;
  }
}

void Leadership::Resign() {
  // Unlocked explicitly: a closed session frees its locks only once its
  // server process has exited, a moment later.
  if (connection_ && connection_->is_open()) UnlockForSession(*connection_, lock_);
  connection_.reset();
}

}  // namespace ferry::pg
