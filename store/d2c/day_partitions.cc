#include "store/d2c/day_partitions.h"

#include <cstdio>
#include <thread>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "core/log.h"
#include "core/pg/advisory_lock.h"
#include "core/pg/transaction.h"

namespace ferry::d2c {
namespace {

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("d2c");
  return logger;
}

std::chrono::sys_days DayOf(TimePoint t) {
  return std::chrono::floor<std::chrono::days>(t);
}

}  // namespace

std::string DayPartitionName(std::chrono::sys_days day) {
  const std::chrono::year_month_day ymd(day);
  return fmt::format("d2c_events_p{:04}{:02}{:02}", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
}

DayRange DayPartitions::Range() {
  {
    std::lock_guard lock(mutex_);
    if (range_) return *range_;
  }
  Refresh();
  std::lock_guard lock(mutex_);
  return range_.value_or(DayRange{});
}

void DayPartitions::Refresh() {
  DayRange range;
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    range = DayRange{};
    for (const auto& row :
         tx.exec("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                 " WHERE i.inhparent = 'd2c_events'::regclass")) {
      const std::string name = row[0].as<std::string>();
      int y = 0;
      unsigned m = 0, d = 0;
      if (std::sscanf(name.c_str(), "d2c_events_p%4d%2u%2u", &y, &m, &d) != 3) continue;
      const std::chrono::sys_days day{std::chrono::year(y) / std::chrono::month(m) /
                                      std::chrono::day(d)};
      if (!range.first || day < *range.first) range.first = day;
      if (!range.last || day > *range.last) range.last = day;
    }
  });
  std::lock_guard lock(mutex_);
  range_ = range;
}

std::vector<std::string> DayPartitions::Ensure(TimePoint now, int ahead_days, int retention_days) {
  const auto today = DayOf(now);
  std::vector<std::string> created;
  for (auto day = today - std::chrono::days(retention_days);
       day <= today + std::chrono::days(ahead_days); day += std::chrono::days(1)) {
    const std::string name = DayPartitionName(day);
    const bool made = pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
      pg::LockForTransaction(tx, pg::AdvisoryLock::kDayPartitions);
      if (!tx.exec_params("SELECT to_regclass($1) IS NULL", name)[0][0].as<bool>()) return false;
      const std::string from = DayText(day), to = DayText(day + std::chrono::days(1));
      tx.exec0(fmt::format("CREATE TABLE {0} (LIKE d2c_events INCLUDING DEFAULTS)", name));
      // The constraint lets ATTACH skip scanning the (empty) table.
      tx.exec0(
          fmt::format("ALTER TABLE {0} ADD CONSTRAINT {0}_range CHECK (enqueued_time >= '{1}'"
                      " AND enqueued_time < '{2}')",
                      name, from, to));
      tx.exec0(fmt::format(
          "ALTER TABLE d2c_events ATTACH PARTITION {0} FOR VALUES FROM ('{1}') TO ('{2}')", name,
          from, to));
      return true;
    });
    if (made) {
      created.push_back(name);
      Logger()->info("event store day partition created partition=\"{}\"", name);
    }
  }
  Refresh();
  return created;
}

std::vector<std::string> DayPartitions::DropExpired(TimePoint now, int retention_days) {
  const auto oldest_kept = DayOf(now) - std::chrono::days(retention_days);
  std::vector<std::string> victims;
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    victims.clear();
    for (const auto& row :
         tx.exec("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                 " WHERE i.inhparent = 'd2c_events'::regclass ORDER BY 1")) {
      const std::string name = row[0].as<std::string>();
      if (name < DayPartitionName(oldest_kept)) victims.push_back(name);
    }
  });
  std::vector<std::string> dropped;
  for (const std::string& name : victims) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      try {
        pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
          pg::LockForTransaction(tx, pg::AdvisoryLock::kDayPartitions);
          // Landing holds the parent briefly; wait at most this long for it.
          tx.exec0("SET LOCAL lock_timeout = '2s'");
          tx.exec0(fmt::format("ALTER TABLE d2c_events DETACH PARTITION {}", name));
          tx.exec0(fmt::format("DROP TABLE {}", name));
        });
        dropped.push_back(name);
        Logger()->info("event store day partition dropped by retention partition=\"{}\"", name);
        break;
      } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() != "55P03") throw;
        Logger()->info("retention waiting for landing to release the table partition=\"{}\"", name);
        std::this_thread::sleep_for(std::chrono::milliseconds(100 * (attempt + 1)));
      }
    }
  }
  Refresh();
  return dropped;
}

}  // namespace ferry::d2c
