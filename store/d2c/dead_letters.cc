#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "core/auth/base64.h"
#include "core/log.h"
#include "core/pg/transaction.h"
#include "store/d2c/event_store.h"
#include "store/d2c/sql_rows.h"

// The dead letters: listing them, and re-driving them through the landing
// planner.

namespace ferry::d2c {
namespace {

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("d2c");
  return logger;
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
    const PartitionId id{group, topic, partition};
    RedriveResult result;
    try {
      result = RedriveOne(id, offset, now, *routes, audit, std::nullopt);
    } catch (const pqxx::sql_error& e) {
      if (!sql::IsDataError(e)) throw;
      result = RedriveOne(id, offset, now, *routes, audit,
                          "PostgreSQL refused the row: " + std::string(e.what()).substr(0, 500));
    }
    Logger()->info(
        "dead letter re-driven topic=\"{}\" partition={} offset={} outcome={} reason=\"{}\"", topic,
        partition, offset, result.outcome, result.reason);
    results.push_back(std::move(result));
  }
  return results;
}

// One dead letter, in one transaction: planned like a batch of one (no
// checkpoint: it is neither covered nor a replay), then delivered, stored
// (unless already there) or counted as dropped, and taken out of the dead
// letters; or kept with its new reason.
RedriveResult EventStore::RedriveOne(const PartitionId& id, std::int64_t offset, TimePoint now,
                                     const routing::RouteSet& routes, const audit::Entry* audit,
                                     const std::optional<std::string>& refused) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    RedriveResult result{id.partition, offset, "not_found", "", ""};
    const pqxx::result found = tx.exec_params(
        fmt::format("SELECT {} FROM d2c_dead_letters WHERE consumer_group = $1 AND topic = $2"
                    " AND kafka_partition = $3 AND kafka_offset = $4 FOR UPDATE",
                    kDeadLetterRecordColumns),
        id.group, id.topic, id.partition, offset);
    if (found.empty()) return result;
    const std::vector<KafkaRecord> record = {
        RecordFromDeadLetter(found[0], pqxx::row::size_type{0})};
    const Classified classified = Classify(record, 0, 1, now, Days(), routes, refused);
    const ClassifiedRecord& c = classified.records.front();
    if (c.dead) {
      tx.exec_params0(
          "UPDATE d2c_dead_letters SET reason = $5, detail = $6, dead_lettered_at = now()"
          " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3"
          " AND kafka_offset = $4",
          id.group, id.topic, id.partition, offset, std::string(ReasonName(c.dead->reason)),
          c.dead->detail);
      return RedriveResult{id.partition, offset, "still_dead",
                           std::string(ReasonName(c.dead->reason)), c.dead->detail};
    }
    const CheckpointState none;
    std::map<std::string, routing::DeviceFields> fields;
    if (routes.needs_device_fields()) {
      fields = sql::LoadDeviceFields(tx, DevicesToEnrich(classified, none));
    }
    const LandingPlan plan = Plan(classified, none, fields, routes, hub_name_);
    Deliver(plan.sends);
    tx.exec_params0(
        "DELETE FROM d2c_dead_letters WHERE consumer_group = $1 AND topic = $2"
        " AND kafka_partition = $3 AND kafka_offset = $4",
        id.group, id.topic, id.partition, offset);
    (void)sql::InsertNewEvents(tx, id, plan.fresh);
    result.outcome = !plan.fresh.empty()         ? "stored"
                     : plan.routed_elsewhere > 0 ? "routed"
                                                 : "dropped";
    if (audit != nullptr) {
      audit::Write(tx, *audit,
                   {{"partition", id.partition}, {"offset", offset}, {"outcome", result.outcome}});
    }
    if (plan.dropped_counted + plan.routed_elsewhere > 0) {
      tx.exec_params0(
          "UPDATE d2c_checkpoints SET dropped = dropped + $4,"
          " routed_elsewhere = routed_elsewhere + $5"
          " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3",
          id.group, id.topic, id.partition, plan.dropped_counted, plan.routed_elsewhere);
    }
    return result;
  });
}

}  // namespace ferry::d2c
