#include "consumers/d2c/event_store.h"

#include <limits>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "core/auth/base64.h"
#include "core/error.h"
#include "core/log.h"
#include "core/pg/copy.h"
#include "core/pg/transaction.h"

namespace ferry::d2c {
namespace {

// pg_advisory_xact_lock key for partition maintenance: "ferry.dy".
constexpr long long kMaintenanceLockKey = 0x66657272792e6479LL;

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("d2c");
  return logger;
}

std::string PgTime(TimePoint t) {
  const auto us = ToUnixMicros(t);
  const auto secs = static_cast<std::time_t>(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ((us % 1000000) + 1000000) % 1000000);
}

std::string DayText(std::chrono::sys_days d) {
  const std::chrono::year_month_day ymd(d);
  return fmt::format("{:04}-{:02}-{:02} 00:00:00+00", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
}

std::string Hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + bytes.size() * 2);
  for (const char c : bytes) {
    out += kHex[static_cast<unsigned char>(c) >> 4];
    out += kHex[static_cast<unsigned char>(c) & 15];
  }
  return out;
}

std::string Json(const std::map<std::string, std::string>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j.dump();
}

std::string HeadersJson(const KafkaRecord& r) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& h : r.headers) {
    j.push_back({{"name", auth::Base64Encode(h.name)},
                 {"value", h.value ? nlohmann::json(auth::Base64Encode(*h.value)) : nlohmann::json()}});
  }
  return j.dump();
}

std::optional<std::string> OptionalTime(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return PgTime(*t);
}

bool IsDataError(const pqxx::sql_error& e) {
  const std::string& s = e.sqlstate();
  return s.rfind("22", 0) == 0 || s.rfind("23", 0) == 0 || s == "54000";
}

std::chrono::sys_days DayOf(TimePoint t) { return std::chrono::floor<std::chrono::days>(t); }

// The fence: the checkpoint row if `epoch` is still current (locked for the
// rest of the transaction, so a zombie's concurrent batch waits and then
// finds itself fenced), else no row.
pqxx::result LockCheckpoint(pqxx::dbtransaction& tx, const PartitionId& id, std::int64_t epoch) {
  return tx.exec_params(
      "SELECT next_offset FROM d2c_checkpoints WHERE consumer_group = $1 AND topic = $2"
      " AND kafka_partition = $3 AND epoch = $4 FOR UPDATE",
      id.group, id.topic, id.partition, epoch);
}

// Moves the checkpoint to `next_offset`, never backwards.
void AdvanceCheckpoint(pqxx::dbtransaction& tx, const PartitionId& id, std::int64_t next_offset) {
  tx.exec_params0(
      "UPDATE d2c_checkpoints SET next_offset = greatest(coalesce(next_offset, $4), $4),"
      " updated_at = now() WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3",
      id.group, id.topic, id.partition, next_offset);
}

struct Row {
  const KafkaRecord* record;
  std::optional<Event> event;
  std::optional<DeadLetter> dead;
};

}  // namespace

std::string DayPartitionName(std::chrono::sys_days day) {
  const std::chrono::year_month_day ymd(day);
  return fmt::format("d2c_events_p{:04}{:02}{:02}", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
}

Claim EventStore::ClaimPartition(const PartitionId& id, const std::string& owner) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::row r = tx.exec_params1(
        "INSERT INTO d2c_checkpoints (consumer_group, topic, kafka_partition, next_offset, epoch,"
        " owner, claimed_at, updated_at) VALUES ($1, $2, $3, NULL, 1, $4, now(), now())"
        " ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE"
        " SET epoch = d2c_checkpoints.epoch + 1, owner = EXCLUDED.owner, claimed_at = now()"
        " RETURNING epoch, next_offset",
        id.group, id.topic, id.partition, owner);
    Claim c;
    c.epoch = r[0].as<std::int64_t>();
    if (!r[1].is_null()) c.next_offset = r[1].as<std::int64_t>();
    return c;
  });
}

std::optional<std::int64_t> EventStore::NextOffset(const PartitionId& id) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) -> std::optional<std::int64_t> {
    const pqxx::result r = tx.exec_params(
        "SELECT next_offset FROM d2c_checkpoints WHERE consumer_group = $1 AND topic = $2"
        " AND kafka_partition = $3",
        id.group, id.topic, id.partition);
    if (r.empty() || r[0][0].is_null()) return std::nullopt;
    return r[0][0].as<std::int64_t>();
  });
}

DayRange EventStore::Days() {
  {
    std::lock_guard lock(mutex_);
    if (days_) return *days_;
  }
  RefreshDays();
  std::lock_guard lock(mutex_);
  return days_.value_or(DayRange{});
}

void EventStore::RefreshDays() {
  DayRange range;
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    range = DayRange{};
    for (const auto& row : tx.exec(
             "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
             " WHERE i.inhparent = 'd2c_events'::regclass")) {
      const std::string name = row[0].as<std::string>();
      int y = 0;
      unsigned m = 0, d = 0;
      if (std::sscanf(name.c_str(), "d2c_events_p%4d%2u%2u", &y, &m, &d) != 3) continue;
      const std::chrono::sys_days day{std::chrono::year(y) / std::chrono::month(m) / std::chrono::day(d)};
      if (!range.first || day < *range.first) range.first = day;
      if (!range.last || day > *range.last) range.last = day;
    }
  });
  std::lock_guard lock(mutex_);
  days_ = range;
}

std::vector<std::string> EventStore::EnsureDays(TimePoint now, int ahead_days, int retention_days) {
  const auto today = DayOf(now);
  std::vector<std::string> created;
  for (auto day = today - std::chrono::days(retention_days); day <= today + std::chrono::days(ahead_days);
       day += std::chrono::days(1)) {
    const std::string name = DayPartitionName(day);
    const bool made = pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
      tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMaintenanceLockKey);
      if (!tx.exec_params("SELECT to_regclass($1) IS NULL", name)[0][0].as<bool>()) return false;
      const std::string from = DayText(day), to = DayText(day + std::chrono::days(1));
      tx.exec0(fmt::format("CREATE TABLE {0} (LIKE d2c_events INCLUDING DEFAULTS)", name));
      // The constraint lets ATTACH skip scanning the (empty) table.
      tx.exec0(fmt::format("ALTER TABLE {0} ADD CONSTRAINT {0}_range CHECK (enqueued_time >= '{1}'"
                           " AND enqueued_time < '{2}')",
                           name, from, to));
      tx.exec0(fmt::format("ALTER TABLE d2c_events ATTACH PARTITION {0} FOR VALUES FROM ('{1}') TO ('{2}')",
                           name, from, to));
      return true;
    });
    if (made) {
      created.push_back(name);
      Logger()->info("event store day partition created partition=\"{}\"", name);
    }
  }
  RefreshDays();
  return created;
}

std::vector<std::string> EventStore::DropExpiredDays(TimePoint now, int retention_days) {
  const auto oldest_kept = DayOf(now) - std::chrono::days(retention_days);
  std::vector<std::string> victims;
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    victims.clear();
    for (const auto& row : tx.exec(
             "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
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
          tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMaintenanceLockKey);
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
  RefreshDays();
  return dropped;
}

LandingOutcome EventStore::Land(const LandingBatch& batch, TimePoint now) {
  if (batch.records.empty()) return {};
  return LandSplitting(batch, 0, batch.records.size(), now);
}

LandingOutcome EventStore::LandSplitting(const LandingBatch& batch, std::size_t begin,
                                         std::size_t end, TimePoint now) {
  for (int attempt = 0;; ++attempt) {
    try {
      return LandOnce(batch, begin, end, now, Days());
    } catch (const pqxx::sql_error& e) {
      if (!IsDataError(e)) throw;
      // A day partition may have been dropped or added meanwhile: re-read
      // them once, then isolate the row PostgreSQL refuses.
      if (attempt == 0) {
        RefreshDays();
        continue;
      }
      if (end - begin == 1) {
        LandingBatch one{batch.id, batch.epoch, {batch.records[begin]}};
        try {
          return LandOnce(one, 0, 1, now, DayRange{std::nullopt, std::nullopt});
        } catch (const pqxx::sql_error& again) {
          if (!IsDataError(again)) throw;
          // Even the dead-letter row was refused: keep the bare identity.
          return LandBare(one, again.what());
        }
      }
      const std::size_t mid = begin + (end - begin) / 2;
      LandingOutcome left = LandSplitting(batch, begin, mid, now);
      if (left.fenced) return left;
      LandingOutcome right = LandSplitting(batch, mid, end, now);
      right.events += left.events;
      right.bytes += left.bytes;
      right.transactions += left.transactions;
      for (const auto& [reason, n] : left.dead_letters) right.dead_letters[reason] += n;
      return right;
    }
  }
}

// The last resort for a record PostgreSQL refuses in any form: its identity
// and reason only, so that the partition moves on.
LandingOutcome EventStore::LandBare(const LandingBatch& one, const std::string& error) {
  const KafkaRecord& r = one.records.front();
  LandingOutcome out;
  out.next_offset = r.offset + 1;
  out.transactions = 1;
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    out.fenced = false;
    out.dead_letters.clear();
    const pqxx::result fence = LockCheckpoint(tx, one.id, one.epoch);
    if (fence.empty()) {
      out.fenced = true;
      return;
    }
    tx.exec_params0(
        "INSERT INTO d2c_dead_letters (consumer_group, topic, kafka_partition, kafka_offset, reason,"
        " detail, record_headers) VALUES ($1, $2, $3, $4, $5, $6, '[]') ON CONFLICT DO NOTHING",
        one.id.group, one.id.topic, one.id.partition, r.offset,
        std::string(ReasonName(DeadLetterReason::kDataError)),
        "refused by PostgreSQL even as a dead letter: " + error.substr(0, 500));
    AdvanceCheckpoint(tx, one.id, out.next_offset);
    out.dead_letters[DeadLetterReason::kDataError] = 1;
  });
  return out;
}

// With an empty `days` every record is dead-lettered as a data error (the
// last step of isolating a row PostgreSQL refuses).
LandingOutcome EventStore::LandOnce(const LandingBatch& batch, std::size_t begin, std::size_t end,
                                    TimePoint now, const DayRange& days) {
  const bool isolating = !days.first && end - begin == 1 && batch.records.size() == 1;
  std::vector<Row> rows;
  rows.reserve(end - begin);
  for (std::size_t i = begin; i < end; ++i) {
    const KafkaRecord& r = batch.records[i];
    Decoded d = Decode(r, now);
    Row row{&r, std::move(d.event), std::move(d.dead_letter)};
    if (row.event && isolating) {
      row.dead = DeadLetter{DeadLetterReason::kDataError, "PostgreSQL refused the row"};
      row.event.reset();
    } else if (row.event) {
      const auto day = DayOf(row.event->enqueued_time);
      if (!days.first || day < *days.first) {
        row.dead = DeadLetter{DeadLetterReason::kOutOfRetention,
                              "enqueued before the oldest event-store day " +
                                  (days.first ? DayText(*days.first) : std::string("(none)"))};
        row.event.reset();
      } else if (day > *days.last) {
        row.dead = DeadLetter{DeadLetterReason::kFutureTimestamp,
                              "enqueued after the newest event-store day " + DayText(*days.last)};
        row.event.reset();
      }
    }
    rows.push_back(std::move(row));
  }
  const std::int64_t next_offset = batch.records[end - 1].offset + 1;

  LandingOutcome out;
  out.next_offset = next_offset;
  out.transactions = 1;
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    out.fenced = false;
    out.events = out.bytes = 0;
    out.dead_letters.clear();
    // First the fence.
    const pqxx::result fence = LockCheckpoint(tx, batch.id, batch.epoch);
    if (fence.empty()) {
      out.fenced = true;
      return;
    }
    // A retried batch (part of it committed before a split, or a commit whose
    // outcome was unknown) skips what the checkpoint already covers.
    const std::int64_t landed_below =
        fence[0][0].is_null() ? std::numeric_limits<std::int64_t>::min() : fence[0][0].as<std::int64_t>();
    for (Row& row : rows) {
      if (row.record->offset < landed_below) {
        row.event.reset();
        row.dead.reset();
      }
    }
    AdvanceCheckpoint(tx, batch.id, next_offset);
    bool any_event = false;
    for (const Row& row : rows) any_event = any_event || row.event.has_value();
    if (any_event) {
      pg::CopyIn copy(tx, "d2c_events",
                      {"consumer_group", "topic", "kafka_partition", "kafka_offset", "enqueued_time",
                       "device_id", "message_id", "correlation_id", "content_type",
                       "content_encoding", "creation_time", "system_properties",
                       "application_properties", "body"});
      for (const Row& row : rows) {
        if (!row.event) continue;
        const Event& e = *row.event;
        copy << std::make_tuple(batch.id.group, batch.id.topic, batch.id.partition,
                                row.record->offset, PgTime(e.enqueued_time), e.device_id,
                                e.message_id, e.correlation_id, e.content_type, e.content_encoding,
                                OptionalTime(e.creation_time), Json(e.system_properties),
                                Json(e.application_properties), Hex(e.body));
        ++out.events;
        out.bytes += e.body.size();
      }
      copy.Complete();
    }
    bool any_dead = false;
    for (const Row& row : rows) any_dead = any_dead || row.dead.has_value();
    if (any_dead) {
      pg::CopyIn copy(tx, "d2c_dead_letters",
                      {"consumer_group", "topic", "kafka_partition", "kafka_offset", "reason",
                       "detail", "record_key", "record_value", "record_headers",
                       "record_timestamp"});
      for (const Row& row : rows) {
        if (!row.dead) continue;
        const KafkaRecord& r = *row.record;
        std::optional<std::string> ts;
        if (r.timestamp_ms && *r.timestamp_ms >= 0 && *r.timestamp_ms < 7258118400000) {
          ts = PgTime(TimePoint(std::chrono::duration_cast<TimePoint::duration>(
              std::chrono::milliseconds(*r.timestamp_ms))));
        }
        copy << std::make_tuple(batch.id.group, batch.id.topic, batch.id.partition, r.offset,
                                std::string(ReasonName(row.dead->reason)), row.dead->detail,
                                r.key ? std::optional<std::string>(Hex(*r.key)) : std::nullopt,
                                r.value ? std::optional<std::string>(Hex(*r.value)) : std::nullopt,
                                HeadersJson(r), ts);
        ++out.dead_letters[row.dead->reason];
      }
      copy.Complete();
    }
  });
  return out;
}

}  // namespace ferry::d2c
