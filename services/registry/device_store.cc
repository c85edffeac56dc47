#include "services/registry/device_store.h"

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "core/error.h"
#include "core/pg/sql_time.h"
#include "core/pg/transaction.h"
#include "services/registry/device_rules.h"

namespace ferry::registry {
namespace {

constexpr std::string_view kColumns =
    "device_id, generation_id, etag, status, status_reason,"
    " (extract(epoch from status_updated_at) * 1000000)::bigint,"
    " primary_key, secondary_key, connection_state,"
    " (extract(epoch from connection_state_updated_at) * 1000000)::bigint,"
    " (extract(epoch from last_activity_at) * 1000000)::bigint,"
    " (extract(epoch from created_at) * 1000000)::bigint";

std::string_view StatusText(DeviceStatus s) {
  switch (s) {
    case DeviceStatus::kEnabled:
      return "enabled";
    case DeviceStatus::kDisabled:
      return "disabled";
  }
  return "enabled";
}

std::optional<TimePoint> OptionalTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return FromUnixMicros(f.as<std::int64_t>());
}

Device FromRow(const pqxx::row& r) {
  Device d;
  d.id = r[0].as<std::string>();
  d.generation_id = r[1].as<std::string>();
  d.etag = r[2].as<std::string>();
  d.status =
      r[3].as<std::string>() == "disabled" ? DeviceStatus::kDisabled : DeviceStatus::kEnabled;
  d.status_reason = r[4].as<std::string>();
  d.status_updated_at = FromUnixMicros(r[5].as<std::int64_t>());
  d.primary_key = r[6].as<std::string>();
  d.secondary_key = r[7].as<std::string>();
  d.connection_state = r[8].as<std::string>() == "connected" ? ConnectionState::kConnected
                                                             : ConnectionState::kDisconnected;
  d.connection_state_updated_at = OptionalTime(r[9]);
  d.last_activity_at = OptionalTime(r[10]);
  d.created_at = FromUnixMicros(r[11].as<std::int64_t>());
  return d;
}

[[noreturn]] void NotFound(std::string_view id) {
  throw Error(Reason::kDeviceNotFound, fmt::format("device \"{}\" does not exist", id));
}

}  // namespace

Device DeviceStore::Create(const NewDevice& device, TimePoint now) {
  const access::NotifyOnExit notify(observer_, "device:" + device.id);
  const std::string sql = fmt::format(
      "INSERT INTO devices (device_id, generation_id, etag, status, status_reason,"
      " status_updated_at, primary_key, secondary_key, created_at, updated_at)"
      " VALUES ($1, $2, $3, $4, $5, {0}, $7, $8, {0}, {0})"
      " ON CONFLICT (device_id) DO NOTHING RETURNING {1}",
      pg::TimestampFromMicros("$6"), kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result r = tx.exec_params(
        sql, device.id, device.generation_id, device.etag, std::string(StatusText(device.status)),
        device.status_reason, ToUnixMicros(now), device.primary_key, device.secondary_key);
    if (r.empty()) {
      throw Error(Reason::kDeviceAlreadyExists,
                  fmt::format("device \"{}\" already exists", device.id));
    }
    return FromRow(r[0]);
  });
}

Device DeviceStore::Get(std::string_view id) {
  const std::string sql = fmt::format("SELECT {} FROM devices WHERE device_id = $1", kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result r = tx.exec_params(sql, std::string(id));
    if (r.empty()) NotFound(id);
    return FromRow(r[0]);
  });
}

Device DeviceStore::Update(const DeviceUpdate& u, TimePoint now) {
  const access::NotifyOnExit notify(observer_, "device:" + u.id);
  const std::string sql = fmt::format(
      "UPDATE devices SET etag = $2, status = $3, status_reason = $4,"
      " status_updated_at = CASE WHEN status = $3 THEN status_updated_at ELSE {0} END,"
      " primary_key = coalesce($6, primary_key), secondary_key = coalesce($7, secondary_key),"
      " updated_at = {0}"
      " WHERE device_id = $1 RETURNING {1}",
      pg::TimestampFromMicros("$5"), kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result current =
        tx.exec_params("SELECT etag FROM devices WHERE device_id = $1 FOR UPDATE", u.id);
    if (current.empty()) NotFound(u.id);
    if (!EtagMatches(u.if_match, current[0][0].as<std::string>())) {
      throw Error(
          Reason::kPreconditionFailed,
          fmt::format("etag {} does not match device \"{}\"'s current etag", u.if_match, u.id));
    }
    const pqxx::result r =
        tx.exec_params(sql, u.id, u.new_etag, std::string(StatusText(u.status)), u.status_reason,
                       ToUnixMicros(now), u.primary_key, u.secondary_key);
    return FromRow(r[0]);
  });
}

void DeviceStore::Delete(std::string_view id, std::string_view if_match,
                         const audit::Entry* audit) {
  const access::NotifyOnExit notify(observer_, "device:" + std::string(id));
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result current =
        tx.exec_params("SELECT etag FROM devices WHERE device_id = $1 FOR UPDATE", std::string(id));
    if (current.empty()) NotFound(id);
    if (!EtagMatches(if_match, current[0][0].as<std::string>())) {
      throw Error(Reason::kPreconditionFailed,
                  fmt::format("etag {} does not match device \"{}\"'s current etag", if_match, id));
    }
    tx.exec_params0("DELETE FROM devices WHERE device_id = $1", std::string(id));
    if (audit != nullptr) audit::Write(tx, *audit, {{"etag", current[0][0].as<std::string>()}});
  });
}

Device DeviceStore::SetKey(std::string_view id, bool primary, const std::string& key,
                           const std::string& new_etag, TimePoint now) {
  const access::NotifyOnExit notify(observer_, "device:" + std::string(id));
  const std::string sql = fmt::format(
      "UPDATE devices SET {} = $2, etag = $3, updated_at = {} WHERE device_id = $1 RETURNING {}",
      primary ? "primary_key" : "secondary_key", pg::TimestampFromMicros("$4"), kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result r = tx.exec_params(sql, std::string(id), key, new_etag, ToUnixMicros(now));
    if (r.empty()) NotFound(id);
    return FromRow(r[0]);
  });
}

std::vector<Device> DeviceStore::List(std::string_view after, int limit) {
  const std::string sql = fmt::format(
      "SELECT {} FROM devices WHERE device_id > $1 ORDER BY device_id LIMIT $2", kColumns);
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::vector<Device> out;
    for (const auto& row : tx.exec_params(sql, std::string(after), limit)) {
      out.push_back(FromRow(row));
    }
    return out;
  });
}

}  // namespace ferry::registry
