#include "store/d2c/event_store.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
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
    j.push_back(
        {{"name", auth::Base64Encode(h.name)},
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

std::chrono::sys_days DayOf(TimePoint t) {
  return std::chrono::floor<std::chrono::days>(t);
}

// The fence: the checkpoint row if `epoch` is still current (locked for the
// rest of the transaction, so a zombie's concurrent batch waits and then
// finds itself fenced), else no row.
pqxx::result LockCheckpoint(pqxx::dbtransaction& tx, const PartitionId& id, std::int64_t epoch) {
  return tx.exec_params(
      "SELECT next_offset, high_offset FROM d2c_checkpoints WHERE consumer_group = $1 AND topic = "
      "$2"
      " AND kafka_partition = $3 AND epoch = $4 FOR UPDATE",
      id.group, id.topic, id.partition, epoch);
}

// What a batch adds to the partition's accounting columns.
struct Counts {
  std::int64_t dropped = 0;
  std::int64_t routed_elsewhere = 0;
  std::int64_t replay_skipped = 0;
  std::optional<std::int64_t> route_version;
};

// Moves the checkpoint (and the high offset) to `next_offset`, never
// backwards, and adds `counts`.
void AdvanceCheckpoint(pqxx::dbtransaction& tx, const PartitionId& id, std::int64_t next_offset,
                       const Counts& counts = {}) {
  tx.exec_params0(
      "UPDATE d2c_checkpoints SET next_offset = greatest(coalesce(next_offset, $4), $4),"
      " high_offset = greatest(coalesce(high_offset, $4), $4), dropped = dropped + $5,"
      " routed_elsewhere = routed_elsewhere + $6, replay_skipped = replay_skipped + $7,"
      " route_version = coalesce($8, route_version), updated_at = now()"
      " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3",
      id.group, id.topic, id.partition, next_offset, counts.dropped, counts.routed_elsewhere,
      counts.replay_skipped, counts.route_version);
}

struct Row {
  const KafkaRecord* record;
  std::optional<Event> event;
  std::optional<DeadLetter> dead;
  bool to_store = false;
  std::vector<std::size_t> kafka;    // Kafka endpoints matched, by index in the route set
  std::vector<std::size_t> deliver;  // those delivered to (EndpointRecords)
  bool skip = false;                 // already covered by the checkpoint
  bool replay = false;               // below the high offset
};

bool IsLifecycle(const Event& e) {
  const auto it = e.system_properties.find("iothub-message-source");
  return it != e.system_properties.end() && it->second == "deviceLifecycleEvents";
}

// Routes each event of `rows`, counting undefined conditions in `out`.
void RouteRows(std::vector<Row>& rows, const routing::RouteSet& routes, LandingOutcome& out) {
  for (Row& row : rows) {
    if (!row.event) continue;
    const Event& e = *row.event;
    const bool lifecycle = IsLifecycle(e);
    if (routes.trivial()) {
      row.to_store = !lifecycle && routes.fallback_enabled();
      continue;
    }
    routing::QueryInput in;
    in.system_properties = e.system_properties;
    in.application_properties = e.application_properties;
    in.body = e.body;
    in.content_type = e.content_type;
    in.content_encoding = e.content_encoding;
    const routing::RouteDecision d = routes.Route(in, lifecycle);
    for (const std::size_t i : d.undefined_routes) ++out.undefined[routes.routes()[i].name];
    for (const std::size_t i : d.endpoints) {
      if (i == routes.store_endpoint()) {
        row.to_store = true;
      } else if (routes.endpoints()[i].kafka) {
        row.kafka.push_back(i);
      }
    }
  }
}

std::string Json(const std::vector<std::pair<std::string, std::string>>& extra,
                 const std::map<std::string, std::string>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = v;
  for (const auto& [k, v] : extra) j[k] = v;
  return j.dump();
}

// Registry fields for `$device.` enrichments of the devices in `rows`.
std::map<std::string, routing::DeviceFields> LoadDeviceFields(pqxx::dbtransaction& tx,
                                                              const std::vector<Row>& rows) {
  nlohmann::json ids = nlohmann::json::array();
  for (const Row& row : rows) {
    if (row.event && !row.skip) ids.push_back(row.event->device_id);
  }
  std::map<std::string, routing::DeviceFields> out;
  if (ids.empty()) return out;
  for (const auto& r : tx.exec_params(
           "SELECT device_id, generation_id, etag, status, status_reason, connection_state"
           " FROM devices WHERE device_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
           ids.dump())) {
    out[r[0].as<std::string>()] = {
        {"deviceId", r[0].as<std::string>()},     {"generationId", r[1].as<std::string>()},
        {"etag", r[2].as<std::string>()},         {"status", r[3].as<std::string>()},
        {"statusReason", r[4].as<std::string>()}, {"connectionState", r[5].as<std::string>()}};
  }
  return out;
}

const routing::DeviceFields* FieldsOf(const std::map<std::string, routing::DeviceFields>& all,
                                      const std::string& device) {
  const auto it = all.find(device);
  return it == all.end() ? nullptr : &it->second;
}

// The event as a record for a Kafka endpoint: key the device id, value the
// body, headers its system and application properties plus enrichments
// (the D2C record contract, so that another Ferry could land it).
kafka::OutgoingRecord ToEndpointRecord(
    const Event& e, const std::string& topic,
    const std::vector<std::pair<std::string, std::string>>& extra) {
  kafka::OutgoingRecord r;
  r.topic = topic;
  r.key = e.device_id;
  r.value = e.body;
  r.timestamp_ms = ToUnixMicros(e.enqueued_time) / 1000;
  for (const auto& [k, v] : e.system_properties) r.headers.emplace_back(k, v);
  std::map<std::string, std::string> app = e.application_properties;
  for (const auto& [k, v] : extra) app[k] = v;
  for (const auto& [k, v] : app) r.headers.emplace_back(k, v);
  return r;
}

// The records for the Kafka endpoints of `row`, enrichments added. An
// endpoint whose enrichments push the message past kMaxD2cMessageBytes is
// not delivered to (as IoT Hub drops it there): it is left out of
// row.deliver and counted in out.oversized, so a row left with no endpoint
// counts as dropped. Safe to repeat on a retried transaction.
std::vector<kafka::OutgoingRecord> EndpointRecords(
    Row& row, const routing::RouteSet& routes, const std::string& hub_name,
    const std::map<std::string, routing::DeviceFields>& fields, LandingOutcome& out) {
  std::vector<kafka::OutgoingRecord> records;
  row.deliver.clear();
  for (const std::size_t i : row.kafka) {
    const auto extra = routes.Enrich(i, hub_name, FieldsOf(fields, row.event->device_id));
    const std::string& name = routes.endpoints()[i].name;
    if (const std::size_t size = MessageSize(*row.event, extra); size > kMaxD2cMessageBytes) {
      ++out.oversized[name];
      Logger()->warn(
          "message not delivered to endpoint: over 256 KB with its enrichments endpoint=\"{}\""
          " partition={} offset={} bytes={}",
          name, row.record->partition, row.record->offset, size);
      continue;
    }
    row.deliver.push_back(i);
    records.push_back(ToEndpointRecord(*row.event, routes.endpoints()[i].kafka_topic, extra));
  }
  return records;
}

std::optional<std::string> RecordTime(const KafkaRecord& r) {
  if (r.timestamp_ms && *r.timestamp_ms >= 0 && *r.timestamp_ms < 7258118400000) {
    return PgTime(TimePoint(std::chrono::duration_cast<TimePoint::duration>(
        std::chrono::milliseconds(*r.timestamp_ms))));
  }
  return std::nullopt;
}

const std::vector<std::string>& EventColumns() {
  static const std::vector<std::string> columns = {"consumer_group",
                                                   "topic",
                                                   "kafka_partition",
                                                   "kafka_offset",
                                                   "enqueued_time",
                                                   "device_id",
                                                   "message_id",
                                                   "correlation_id",
                                                   "content_type",
                                                   "content_encoding",
                                                   "creation_time",
                                                   "system_properties",
                                                   "application_properties",
                                                   "body"};
  return columns;
}

std::string ColumnList() {
  std::string out;
  for (const auto& c : EventColumns()) out += (out.empty() ? "" : ", ") + c;
  return out;
}

// Replayed rows not yet in the store nor the dead letters, from the staging
// table the caller filled. Returns how many were inserted.
std::size_t InsertNewFromStaging(pqxx::dbtransaction& tx) {
  const std::string cols = ColumnList();
  return tx
      .exec(fmt::format(
          "WITH ins AS (INSERT INTO d2c_events ({0}) SELECT {0} FROM d2c_replay s"
          " WHERE NOT EXISTS (SELECT 1 FROM d2c_events e WHERE e.consumer_group = s.consumer_group"
          " AND e.topic = s.topic AND e.kafka_partition = s.kafka_partition"
          " AND e.kafka_offset = s.kafka_offset)"
          " AND NOT EXISTS (SELECT 1 FROM d2c_dead_letters d WHERE d.consumer_group = "
          "s.consumer_group"
          " AND d.topic = s.topic AND d.kafka_partition = s.kafka_partition"
          " AND d.kafka_offset = s.kafka_offset)"
          " ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM ins",
          cols))[0][0]
      .as<std::size_t>();
}

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
  days_ = range;
}

std::vector<std::string> EventStore::EnsureDays(TimePoint now, int ahead_days, int retention_days) {
  const auto today = DayOf(now);
  std::vector<std::string> created;
  for (auto day = today - std::chrono::days(retention_days);
       day <= today + std::chrono::days(ahead_days); day += std::chrono::days(1)) {
    const std::string name = DayPartitionName(day);
    const bool made = pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
      tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMaintenanceLockKey);
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
  RefreshDays();
  return created;
}

std::vector<std::string> EventStore::DropExpiredDays(TimePoint now, int retention_days) {
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

void EventStore::SetRouting(std::function<std::shared_ptr<const routing::RouteSet>()> routes,
                            EndpointSink* sink, std::string hub_name) {
  routes_ = std::move(routes);
  sink_ = sink;
  hub_name_ = std::move(hub_name);
}

std::shared_ptr<const routing::RouteSet> EventStore::Routes() {
  return routes_ ? routes_() : routing::RouteSet::StoreEverything();
}

void EventStore::Deliver(const std::vector<kafka::OutgoingRecord>& records) {
  if (records.empty()) return;
  if (sink_ == nullptr) {
    throw Error(Reason::kServiceUnavailable,
                "a route sends to a Kafka endpoint but no producer is configured");
  }
  sink_->Deliver(records);
}

LandingOutcome EventStore::Land(const LandingBatch& batch, TimePoint now) {
  if (batch.records.empty()) return {};
  const auto routes = Routes();
  LandingOutcome out = LandSplitting(batch, 0, batch.records.size(), now, *routes);
  out.route_version = routes->version();
  Logger()->debug(
      "batch landed partition={} first_offset={} next_offset={} events={} dropped={}"
      " replay_skipped={} route_version={}",
      batch.id.partition, batch.records.front().offset, out.next_offset, out.events, out.dropped,
      out.replay_skipped, out.route_version);
  return out;
}

LandingOutcome EventStore::LandSplitting(const LandingBatch& batch, std::size_t begin,
                                         std::size_t end, TimePoint now,
                                         const routing::RouteSet& routes) {
  for (int attempt = 0;; ++attempt) {
    try {
      return LandOnce(batch, begin, end, now, Days(), routes);
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
          return LandOnce(one, 0, 1, now, DayRange{std::nullopt, std::nullopt}, routes);
        } catch (const pqxx::sql_error& again) {
          if (!IsDataError(again)) throw;
          // Even the dead-letter row was refused: keep the bare identity.
          return LandBare(one, again.what());
        }
      }
      const std::size_t mid = begin + (end - begin) / 2;
      LandingOutcome left = LandSplitting(batch, begin, mid, now, routes);
      if (left.fenced) return left;
      LandingOutcome right = LandSplitting(batch, mid, end, now, routes);
      right.events += left.events;
      right.bytes += left.bytes;
      right.transactions += left.transactions;
      right.dropped += left.dropped;
      right.replay_skipped += left.replay_skipped;
      for (const auto& [reason, n] : left.dead_letters) right.dead_letters[reason] += n;
      for (const auto& [name, n] : left.routed) right.routed[name] += n;
      for (const auto& [name, n] : left.oversized) right.oversized[name] += n;
      for (const auto& [name, n] : left.undefined) right.undefined[name] += n;
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
        "INSERT INTO d2c_dead_letters (consumer_group, topic, kafka_partition, kafka_offset, "
        "reason,"
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
                                    TimePoint now, const DayRange& days,
                                    const routing::RouteSet& routes) {
  const bool isolating = !days.first && end - begin == 1 && batch.records.size() == 1;
  LandingOutcome out;
  std::vector<Row> rows;
  rows.reserve(end - begin);
  for (std::size_t i = begin; i < end; ++i) {
    const KafkaRecord& r = batch.records[i];
    Decoded d = Decode(r, now);
    rows.push_back(Row{&r, std::move(d.event), std::move(d.dead_letter)});
  }
  RouteRows(rows, routes, out);
  for (Row& row : rows) {
    if (!row.event) continue;
    if (isolating) {
      row.dead = DeadLetter{DeadLetterReason::kDataError, "PostgreSQL refused the row"};
      row.event.reset();
      row.to_store = false;
      row.kafka.clear();
      continue;
    }
    if (!row.to_store) continue;  // the store's days do not matter to it
    const auto day = DayOf(row.event->enqueued_time);
    if (!days.first || day < *days.first) {
      row.dead = DeadLetter{DeadLetterReason::kOutOfRetention,
                            "enqueued before the oldest event-store day " +
                                (days.first ? DayText(*days.first) : std::string("(none)"))};
      row.to_store = false;
    } else if (day > *days.last) {
      row.dead = DeadLetter{DeadLetterReason::kFutureTimestamp,
                            "enqueued after the newest event-store day " + DayText(*days.last)};
      row.to_store = false;
    }
  }
  const std::int64_t next_offset = batch.records[end - 1].offset + 1;
  const std::map<std::string, std::size_t> undefined = out.undefined;

  out.next_offset = next_offset;
  out.transactions = 1;
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    out.fenced = false;
    out.events = out.bytes = out.dropped = out.replay_skipped = 0;
    out.dead_letters.clear();
    out.routed.clear();
    out.undefined = undefined;
    // First the fence.
    const pqxx::result fence = LockCheckpoint(tx, batch.id, batch.epoch);
    if (fence.empty()) {
      out.fenced = true;
      return;
    }
    // A retried batch (part of it committed before a split, or a commit whose
    // outcome was unknown) skips what the checkpoint already covers; what
    // lies below the high offset (after a checkpoint reset) is a replay.
    const std::int64_t landed_below = fence[0][0].is_null()
                                          ? std::numeric_limits<std::int64_t>::min()
                                          : fence[0][0].as<std::int64_t>();
    const std::int64_t high = fence[0][1].is_null() ? std::numeric_limits<std::int64_t>::min()
                                                    : fence[0][1].as<std::int64_t>();
    for (Row& row : rows) {
      row.skip = row.record->offset < landed_below;
      row.replay = row.record->offset < high;
    }
    std::map<std::string, routing::DeviceFields> fields;
    if (routes.needs_device_fields()) fields = LoadDeviceFields(tx, rows);
    // Kafka endpoints first: acknowledged before the checkpoint commits.
    std::vector<kafka::OutgoingRecord> deliveries;
    out.oversized.clear();
    for (Row& row : rows) {
      if (row.skip || !row.event) continue;
      for (auto& record : EndpointRecords(row, routes, hub_name_, fields, out)) {
        deliveries.push_back(std::move(record));
      }
      for (const std::size_t i : row.deliver) ++out.routed[routes.endpoints()[i].name];
    }
    Counts counts;
    counts.route_version = routes.version();
    for (const Row& row : rows) {
      if (row.skip) continue;
      if (row.event && !row.dead && !row.to_store && row.deliver.empty()) {
        ++out.dropped;
        if (!row.replay) ++counts.dropped;
      } else if (row.event && !row.to_store && !row.dead) {
        if (!row.replay) ++counts.routed_elsewhere;
      }
    }
    Deliver(deliveries);

    // The store's share: straight in, or through staging for a replay.
    std::size_t fresh = 0, replayed = 0;
    for (const Row& row : rows) {
      if (row.skip || !row.to_store) continue;
      (row.replay ? replayed : fresh) += 1;
    }
    const auto store_rows = [&](pg::CopyIn& copy, bool replay) {
      for (const Row& row : rows) {
        if (row.skip || !row.to_store || row.replay != replay) continue;
        const Event& e = *row.event;
        const auto extra =
            routes.Enrich(routes.store_endpoint(), hub_name_, FieldsOf(fields, e.device_id));
        copy << std::make_tuple(batch.id.group, batch.id.topic, batch.id.partition,
                                row.record->offset, PgTime(e.enqueued_time), e.device_id,
                                e.message_id, e.correlation_id, e.content_type, e.content_encoding,
                                OptionalTime(e.creation_time), Json(e.system_properties),
                                Json(extra, e.application_properties), Hex(e.body));
        if (!replay) out.bytes += e.body.size();
      }
      copy.Complete();
    };
    if (fresh > 0) {
      pg::CopyIn copy(tx, "d2c_events", EventColumns());
      store_rows(copy, false);
      out.events += fresh;
    }
    if (replayed > 0) {
      tx.exec0(
          fmt::format("CREATE TEMP TABLE d2c_replay ON COMMIT DROP AS SELECT {} FROM d2c_events"
                      " WITH NO DATA",
                      ColumnList()));
      {
        pg::CopyIn copy(tx, "d2c_replay", EventColumns());
        store_rows(copy, true);
      }
      const std::size_t inserted = InsertNewFromStaging(tx);
      out.events += inserted;
      out.replay_skipped += replayed - inserted;
      counts.replay_skipped += static_cast<std::int64_t>(replayed - inserted);
    }
    out.routed[routing::kStoreEndpoint] += fresh + replayed;
    if (out.routed[routing::kStoreEndpoint] == 0) out.routed.erase(routing::kStoreEndpoint);

    // Dead letters: COPY when new; on a replay, records past retention are
    // skipped and the rest kept only if the record is nowhere yet.
    bool any_dead = false;
    for (const Row& row : rows) {
      if (row.skip || !row.dead) continue;
      if (row.replay) {
        const bool gone = row.dead->reason == DeadLetterReason::kOutOfRetention ||
                          row.dead->reason == DeadLetterReason::kExpired;
        const KafkaRecord& r = *row.record;
        const std::size_t n =
            gone ? 0
                 : tx.exec_params(
                         "INSERT INTO d2c_dead_letters (consumer_group, topic, kafka_partition,"
                         " kafka_offset, reason, detail, record_key, record_value, record_headers,"
                         " record_timestamp) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10"
                         " WHERE NOT EXISTS (SELECT 1 FROM d2c_events e WHERE e.consumer_group = $1"
                         " AND e.topic = $2 AND e.kafka_partition = $3 AND e.kafka_offset = $4)"
                         " ON CONFLICT DO NOTHING",
                         batch.id.group, batch.id.topic, batch.id.partition, r.offset,
                         std::string(ReasonName(row.dead->reason)), row.dead->detail,
                         r.key ? std::optional<std::string>(Hex(*r.key)) : std::nullopt,
                         r.value ? std::optional<std::string>(Hex(*r.value)) : std::nullopt,
                         HeadersJson(r), RecordTime(r))
                       .affected_rows();
        if (n == 0) {
          ++out.replay_skipped;
          ++counts.replay_skipped;
        } else {
          ++out.dead_letters[row.dead->reason];
        }
        continue;
      }
      any_dead = true;
    }
    if (any_dead) {
      pg::CopyIn copy(
          tx, "d2c_dead_letters",
          {"consumer_group", "topic", "kafka_partition", "kafka_offset", "reason", "detail",
           "record_key", "record_value", "record_headers", "record_timestamp"});
      for (const Row& row : rows) {
        if (row.skip || row.replay || !row.dead) continue;
        const KafkaRecord& r = *row.record;
        copy << std::make_tuple(batch.id.group, batch.id.topic, batch.id.partition, r.offset,
                                std::string(ReasonName(row.dead->reason)), row.dead->detail,
                                r.key ? std::optional<std::string>(Hex(*r.key)) : std::nullopt,
                                r.value ? std::optional<std::string>(Hex(*r.value)) : std::nullopt,
                                HeadersJson(r), RecordTime(r));
        ++out.dead_letters[row.dead->reason];
      }
      copy.Complete();
    }
    AdvanceCheckpoint(tx, batch.id, next_offset, counts);
  });
  return out;
}

namespace {

constexpr std::string_view kCheckpointColumns =
    "topic, kafka_partition, next_offset, high_offset, epoch, owner,"
    " (extract(epoch from claimed_at) * 1000000)::bigint,"
    " (extract(epoch from updated_at) * 1000000)::bigint, dropped, routed_elsewhere,"
    " replay_skipped, route_version, lost";

template <typename T>
std::optional<T> Opt(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<T>();
}

CheckpointRow CheckpointFromRow(const pqxx::row& r) {
  return CheckpointRow{r[0].as<std::string>(),
                       r[1].as<std::int32_t>(),
                       Opt<std::int64_t>(r[2]),
                       Opt<std::int64_t>(r[3]),
                       r[4].as<std::int64_t>(),
                       r[5].as<std::string>(),
                       FromUnixMicros(r[6].as<std::int64_t>()),
                       FromUnixMicros(r[7].as<std::int64_t>()),
                       r[8].as<std::int64_t>(),
                       r[9].as<std::int64_t>(),
                       r[10].as<std::int64_t>(),
                       Opt<std::int64_t>(r[11]),
                       r[12].as<std::int64_t>()};
}

std::string Unhex(const pqxx::field& f) {
  if (f.is_null()) return "";
  return pqxx::binarystring(f).str();
}

KafkaRecord RecordFromDeadLetter(const pqxx::row& r, pqxx::row::size_type first) {
  // Columns from `first`: topic, partition, offset, key, value, headers, timestamp ms.
  KafkaRecord k;
  k.topic = r[first].as<std::string>();
  k.partition = r[first + 1].as<std::int32_t>();
  k.offset = r[first + 2].as<std::int64_t>();
  if (!r[first + 3].is_null()) k.key = Unhex(r[first + 3]);
  if (!r[first + 4].is_null()) k.value = Unhex(r[first + 4]);
  for (const auto& h : nlohmann::json::parse(r[first + 5].as<std::string>())) {
    KafkaHeader kh{auth::Base64Decode(h.at("name").get<std::string>()).value_or(""), std::nullopt};
    if (!h.at("value").is_null())
      kh.value = auth::Base64Decode(h.at("value").get<std::string>()).value_or("");
    k.headers.push_back(std::move(kh));
  }
  if (!r[first + 6].is_null()) k.timestamp_ms = r[first + 6].as<std::int64_t>();
  return k;
}

constexpr std::string_view kDeadLetterRecordColumns =
    "topic, kafka_partition, kafka_offset, record_key, record_value, record_headers,"
    " (extract(epoch from record_timestamp) * 1000)::bigint";

}  // namespace

std::vector<CheckpointRow> EventStore::Checkpoints(const std::string& group,
                                                   const std::string& topic) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::vector<CheckpointRow> out;
    for (const auto& r :
         tx.exec_params(fmt::format("SELECT {} FROM d2c_checkpoints WHERE consumer_group = $1"
                                    " AND ($2 = '' OR topic = $2) ORDER BY topic, kafka_partition",
                                    kCheckpointColumns),
                        group, topic)) {
      out.push_back(CheckpointFromRow(r));
    }
    return out;
  });
}

std::map<std::int32_t, std::pair<std::int64_t, std::string>> EventStore::Epochs(
    const std::string& group, const std::string& topic) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::map<std::int32_t, std::pair<std::int64_t, std::string>> out;
    for (const auto& r : tx.exec_params(
             "SELECT kafka_partition, epoch, owner FROM d2c_checkpoints WHERE consumer_group = $1"
             " AND topic = $2",
             group, topic)) {
      out[r[0].as<std::int32_t>()] = {r[1].as<std::int64_t>(), r[2].as<std::string>()};
    }
    return out;
  });
}

CheckpointRow EventStore::ResetCheckpoint(const PartitionId& id, std::int64_t next_offset,
                                          const audit::Entry* audit) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    if (audit != nullptr) {
      const pqxx::result before = tx.exec_params(
          "SELECT next_offset FROM d2c_checkpoints WHERE consumer_group = $1 AND topic = $2"
          " AND kafka_partition = $3 FOR UPDATE",
          id.group, id.topic, id.partition);
      audit::Write(
          tx, *audit,
          {{"partition", id.partition},
           {"from_offset", before.empty() ? nlohmann::json(nullptr)
                                          : nlohmann::json(before[0][0].as<std::int64_t>())},
           {"to_offset", next_offset}});
    }
    return CheckpointFromRow(tx.exec_params1(
        fmt::format(
            "INSERT INTO d2c_checkpoints (consumer_group, topic, kafka_partition, next_offset, "
            "epoch,"
            " owner, claimed_at, updated_at) VALUES ($1, $2, $3, $4, 0, '', now(), now())"
            " ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE"
            " SET next_offset = EXCLUDED.next_offset, epoch = d2c_checkpoints.epoch + 1,"
            " high_offset = greatest(d2c_checkpoints.high_offset, d2c_checkpoints.next_offset),"
            " updated_at = now() RETURNING {}",
            kCheckpointColumns),
        id.group, id.topic, id.partition, next_offset));
  });
}

GapOutcome EventStore::SkipDeleted(const PartitionId& id, std::int64_t epoch, std::int64_t from,
                                   std::int64_t to, const std::string& owner) {
  if (from < 0 || to <= from) {
    throw std::invalid_argument(fmt::format("SkipDeleted: bad range [{}, {})", from, to));
  }
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    GapOutcome out;
    const pqxx::result locked = LockCheckpoint(tx, id, epoch);
    if (locked.empty() || locked[0][0].is_null() || locked[0][0].as<std::int64_t>() != from) {
      out.fenced = true;
      return out;
    }
    const std::int64_t high = locked[0][1].is_null() ? from : locked[0][1].as<std::int64_t>();
    out.lost_from = std::clamp(high, from, to);
    out.lost_to = to;
    out.replay_skipped = out.lost_from - from;
    const std::int64_t lost = out.lost_to - out.lost_from;
    if (lost > 0) {
      tx.exec_params0(
          "INSERT INTO d2c_gaps (consumer_group, topic, kafka_partition, from_offset, to_offset, "
          "owner)"
          " VALUES ($1, $2, $3, $4, $5, $6)",
          id.group, id.topic, id.partition, out.lost_from, out.lost_to, owner);
      tx.exec_params0(
          "UPDATE d2c_checkpoints SET lost = lost + $4 WHERE consumer_group = $1 AND topic = $2"
          " AND kafka_partition = $3",
          id.group, id.topic, id.partition, lost);
    }
    AdvanceCheckpoint(tx, id, to, Counts{.replay_skipped = out.replay_skipped});
    return out;
  });
}

std::vector<DeadLetterRow> EventStore::DeadLetters(const DeadLetterFilter& f) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::vector<DeadLetterRow> out;
    const auto after = f.after.value_or(std::pair<std::int32_t, std::int64_t>{-1, -1});
    for (const auto& r : tx.exec_params(
             fmt::format(
                 "SELECT reason, detail, (extract(epoch from dead_lettered_at) * 1000000)::bigint, "
                 "{}"
                 " FROM d2c_dead_letters WHERE consumer_group = $1 AND ($2 = '' OR topic = $2)"
                 " AND ($3::text IS NULL OR reason = $3) AND ($4::int IS NULL OR kafka_partition = "
                 "$4)"
                 " AND (kafka_partition, kafka_offset) > ($5, $6)"
                 " ORDER BY kafka_partition, kafka_offset LIMIT $7",
                 kDeadLetterRecordColumns),
             f.group, f.topic, f.reason, f.partition, after.first, after.second,
             static_cast<std::int64_t>(f.limit))) {
      DeadLetterRow d;
      d.reason = r[0].as<std::string>();
      d.detail = r[1].as<std::string>();
      d.dead_lettered_at = FromUnixMicros(r[2].as<std::int64_t>());
      d.record = RecordFromDeadLetter(r, pqxx::row::size_type{3});
      d.topic = d.record.topic;
      d.partition = d.record.partition;
      d.offset = d.record.offset;
      out.push_back(std::move(d));
    }
    return out;
  });
}

std::vector<RedriveResult> EventStore::Redrive(
    const std::string& group, const std::string& topic,
    const std::vector<std::pair<std::int32_t, std::int64_t>>& records, TimePoint now,
    const audit::Entry* audit) {
  std::vector<RedriveResult> results;
  const auto routes = Routes();
  for (const auto& [partition, offset] : records) {
    RedriveResult result{partition, offset, "not_found", "", ""};
    const PartitionId id{group, topic, partition};
    const auto attempt = [&](bool as_data_error, const std::string& error) {
      pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
        result = RedriveResult{partition, offset, "not_found", "", ""};
        const pqxx::result found = tx.exec_params(
            fmt::format("SELECT {} FROM d2c_dead_letters WHERE consumer_group = $1 AND topic = $2"
                        " AND kafka_partition = $3 AND kafka_offset = $4 FOR UPDATE",
                        kDeadLetterRecordColumns),
            group, topic, partition, offset);
        if (found.empty()) return;
        const KafkaRecord record = RecordFromDeadLetter(found[0], pqxx::row::size_type{0});
        Decoded d = Decode(record, now);
        std::vector<Row> rows = {Row{&record, std::move(d.event), std::move(d.dead_letter)}};
        LandingOutcome routed;
        RouteRows(rows, *routes, routed);
        Row& row = rows.front();
        if (as_data_error) {
          row.dead = DeadLetter{DeadLetterReason::kDataError,
                                "PostgreSQL refused the row: " + error.substr(0, 500)};
        } else if (row.event && row.to_store) {
          const DayRange days = Days();
          const auto day = DayOf(row.event->enqueued_time);
          if (!days.first || day < *days.first) {
            row.dead = DeadLetter{DeadLetterReason::kOutOfRetention,
                                  "enqueued before the oldest event-store day"};
          } else if (day > *days.last) {
            row.dead = DeadLetter{DeadLetterReason::kFutureTimestamp,
                                  "enqueued after the newest event-store day"};
          }
        }
        if (row.dead) {
          tx.exec_params0(
              "UPDATE d2c_dead_letters SET reason = $5, detail = $6, dead_lettered_at = now()"
              " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3 AND kafka_offset "
              "= $4",
              group, topic, partition, offset, std::string(ReasonName(row.dead->reason)),
              row.dead->detail);
          result = RedriveResult{partition, offset, "still_dead",
                                 std::string(ReasonName(row.dead->reason)), row.dead->detail};
          return;
        }
        std::map<std::string, routing::DeviceFields> fields;
        if (routes->needs_device_fields()) fields = LoadDeviceFields(tx, rows);
        Deliver(EndpointRecords(row, *routes, hub_name_, fields, routed));
        Counts counts;
        if (row.to_store) {
          const Event& e = *row.event;
          const auto extra =
              routes->Enrich(routes->store_endpoint(), hub_name_, FieldsOf(fields, e.device_id));
          tx.exec_params0(
              fmt::format(
                  "INSERT INTO d2c_events ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
                  " $11, $12, $13, $14) ON CONFLICT DO NOTHING",
                  ColumnList()),
              group, topic, partition, offset, PgTime(e.enqueued_time), e.device_id, e.message_id,
              e.correlation_id, e.content_type, e.content_encoding, OptionalTime(e.creation_time),
              Json(e.system_properties), Json(extra, e.application_properties),
              pqxx::binarystring(e.body));
          result.outcome = "stored";
        } else if (!row.deliver.empty()) {
          counts.routed_elsewhere = 1;
          result.outcome = "routed";
        } else {
          counts.dropped = 1;
          result.outcome = "dropped";
        }
        tx.exec_params0(
            "DELETE FROM d2c_dead_letters WHERE consumer_group = $1 AND topic = $2"
            " AND kafka_partition = $3 AND kafka_offset = $4",
            group, topic, partition, offset);
        if (audit != nullptr) {
          audit::Write(tx, *audit,
                       {{"partition", partition}, {"offset", offset}, {"outcome", result.outcome}});
        }
        if (counts.dropped + counts.routed_elsewhere > 0) {
          tx.exec_params0(
              "UPDATE d2c_checkpoints SET dropped = dropped + $4, routed_elsewhere = "
              "routed_elsewhere + $5"
              " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3",
              group, topic, partition, counts.dropped, counts.routed_elsewhere);
        }
      });
    };
    try {
      attempt(false, "");
    } catch (const pqxx::sql_error& e) {
      if (!IsDataError(e)) throw;
      attempt(true, e.what());
    }
    Logger()->info(
        "dead letter re-driven topic=\"{}\" partition={} offset={} outcome={} reason=\"{}\"", topic,
        partition, offset, result.outcome, result.reason);
    results.push_back(std::move(result));
  }
  return results;
}

}  // namespace ferry::d2c
