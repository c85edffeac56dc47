#include "store/d2c/sql_rows.h"

#include <ctime>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/auth/base64.h"
#include "core/pg/copy.h"

namespace ferry::d2c::sql {

std::string Time(TimePoint t) {
  const auto us = ToUnixMicros(t);
  const auto secs = static_cast<std::time_t>(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ((us % 1000000) + 1000000) % 1000000);
}

std::optional<std::string> Time(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return Time(*t);
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

std::string Json(const std::map<std::string, std::string>& m,
                 const std::vector<std::pair<std::string, std::string>>& extra) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = v;
  for (const auto& [k, v] : extra) j[k] = v;
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

std::optional<std::string> RecordTime(const KafkaRecord& r) {
  if (r.timestamp_ms && *r.timestamp_ms >= 0 && *r.timestamp_ms < 7258118400000) {
    return Time(TimePoint(std::chrono::duration_cast<TimePoint::duration>(
        std::chrono::milliseconds(*r.timestamp_ms))));
  }
  return std::nullopt;
}

bool IsDataError(const pqxx::sql_error& e) {
  const std::string& s = e.sqlstate();
  return s.rfind("22", 0) == 0 || s.rfind("23", 0) == 0 || s == "54000";
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

std::string EventColumnList() {
  std::string out;
  for (const auto& c : EventColumns()) out += (out.empty() ? "" : ", ") + c;
  return out;
}

std::optional<CheckpointState> LockCheckpoint(pqxx::dbtransaction& tx, const PartitionId& id,
                                              std::int64_t epoch) {
  const pqxx::result r = tx.exec_params(
      "SELECT next_offset, high_offset FROM d2c_checkpoints WHERE consumer_group = $1"
      " AND topic = $2 AND kafka_partition = $3 AND epoch = $4 FOR UPDATE",
      id.group, id.topic, id.partition, epoch);
  if (r.empty()) return std::nullopt;
  CheckpointState state;
  if (!r[0][0].is_null()) state.next_offset = r[0][0].as<std::int64_t>();
  if (!r[0][1].is_null()) state.high_offset = r[0][1].as<std::int64_t>();
  return state;
}

void AdvanceCheckpoint(pqxx::dbtransaction& tx, const PartitionId& id, std::int64_t next_offset,
                       const Counts& counts) {
  tx.exec_params0(
      "UPDATE d2c_checkpoints SET next_offset = greatest(coalesce(next_offset, $4), $4),"
      " high_offset = greatest(coalesce(high_offset, $4), $4), dropped = dropped + $5,"
      " routed_elsewhere = routed_elsewhere + $6, replay_skipped = replay_skipped + $7,"
      " route_version = coalesce($8, route_version), updated_at = now()"
      " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3",
      id.group, id.topic, id.partition, next_offset, counts.dropped, counts.routed_elsewhere,
      counts.replay_skipped, counts.route_version);
}

std::map<std::string, routing::DeviceFields> LoadDeviceFields(
    pqxx::dbtransaction& tx, const std::vector<std::string>& devices) {
  std::map<std::string, routing::DeviceFields> out;
  if (devices.empty()) return out;
  const nlohmann::json ids = devices;
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

namespace {

void CopyEventsInto(pqxx::dbtransaction& tx, const std::string& table, const PartitionId& id,
                    const std::vector<StoreRow>& rows) {
  pg::CopyIn copy(tx, table, EventColumns());
  for (const StoreRow& row : rows) {
    const Event& e = *row.event;
    copy << std::make_tuple(
        id.group, id.topic, id.partition, row.record->offset, Time(e.enqueued_time), e.device_id,
        e.message_id, e.correlation_id, e.content_type, e.content_encoding, Time(e.creation_time),
        Json(e.system_properties), Json(e.application_properties, row.enrichments), Hex(e.body));
  }
  copy.Complete();
}

const std::vector<std::string>& DeadLetterColumns() {
  static const std::vector<std::string> columns = {
      "consumer_group", "topic",      "kafka_partition", "kafka_offset",   "reason",
      "detail",         "record_key", "record_value",    "record_headers", "record_timestamp"};
  return columns;
}

std::optional<std::string> OptionalHex(const std::optional<std::string>& bytes) {
  if (!bytes) return std::nullopt;
  return Hex(*bytes);
}

}  // namespace

void CopyEvents(pqxx::dbtransaction& tx, const PartitionId& id, const std::vector<StoreRow>& rows) {
  if (!rows.empty()) CopyEventsInto(tx, "d2c_events", id, rows);
}

std::size_t InsertNewEvents(pqxx::dbtransaction& tx, const PartitionId& id,
                            const std::vector<StoreRow>& rows) {
  if (rows.empty()) return 0;
  const std::string cols = EventColumnList();
  tx.exec0(fmt::format(
      "CREATE TEMP TABLE d2c_replay ON COMMIT DROP AS SELECT {} FROM d2c_events WITH NO DATA",
      cols));
  CopyEventsInto(tx, "d2c_replay", id, rows);
  return tx
      .exec(fmt::format(
          "WITH ins AS (INSERT INTO d2c_events ({0}) SELECT {0} FROM d2c_replay s"
          " WHERE NOT EXISTS (SELECT 1 FROM d2c_events e WHERE e.consumer_group = s.consumer_group"
          " AND e.topic = s.topic AND e.kafka_partition = s.kafka_partition"
          " AND e.kafka_offset = s.kafka_offset)"
          " AND NOT EXISTS (SELECT 1 FROM d2c_dead_letters d"
          " WHERE d.consumer_group = s.consumer_group"
          " AND d.topic = s.topic AND d.kafka_partition = s.kafka_partition"
          " AND d.kafka_offset = s.kafka_offset)"
          " ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM ins",
          cols))[0][0]
      .as<std::size_t>();
}

void CopyDeadLetters(pqxx::dbtransaction& tx, const PartitionId& id,
                     const std::vector<const ClassifiedRecord*>& dead) {
  if (dead.empty()) return;
  pg::CopyIn copy(tx, "d2c_dead_letters", DeadLetterColumns());
  for (const ClassifiedRecord* c : dead) {
    const KafkaRecord& r = *c->record;
    copy << std::make_tuple(
        id.group, id.topic, id.partition, r.offset, std::string(ReasonName(c->dead->reason)),
        c->dead->detail, OptionalHex(r.key), OptionalHex(r.value), HeadersJson(r), RecordTime(r));
  }
  copy.Complete();
}

bool InsertNewDeadLetter(pqxx::dbtransaction& tx, const PartitionId& id,
                         const ClassifiedRecord& dead) {
  const KafkaRecord& r = *dead.record;
  return tx.exec_params(
               "INSERT INTO d2c_dead_letters (consumer_group, topic, kafka_partition,"
               " kafka_offset, reason, detail, record_key, record_value, record_headers,"
               " record_timestamp) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10"
               " WHERE NOT EXISTS (SELECT 1 FROM d2c_events e WHERE e.consumer_group = $1"
               " AND e.topic = $2 AND e.kafka_partition = $3 AND e.kafka_offset = $4)"
               " ON CONFLICT DO NOTHING",
               id.group, id.topic, id.partition, r.offset,
               std::string(ReasonName(dead.dead->reason)), dead.dead->detail, OptionalHex(r.key),
               OptionalHex(r.value), HeadersJson(r), RecordTime(r))
             .affected_rows() > 0;
}

}  // namespace ferry::d2c::sql
