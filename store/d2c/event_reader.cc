#include "store/d2c/event_reader.h"

#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "core/pg/sql_time.h"
#include "core/pg/transaction.h"

namespace ferry::d2c {
namespace {

std::map<std::string, std::string> JsonMap(const std::string& text) {
  std::map<std::string, std::string> out;
  const nlohmann::json j = nlohmann::json::parse(text);
  for (auto it = j.begin(); it != j.end(); ++it) {
    out[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
  }
  return out;
}

template <typename T>
std::optional<T> Opt(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<T>();
}

}  // namespace

std::string Position::ToString() const {
  return fmt::format("{}.{}", xid, id);
}

std::optional<Position> Position::Parse(const std::string& text) {
  const auto dot = text.find('.');
  if (dot == std::string::npos || dot == 0) return std::nullopt;
  Position p;
  const char* end = text.data() + text.size();
  auto [a, ea] = std::from_chars(text.data(), text.data() + dot, p.xid);
  if (ea != std::errc() || a != text.data() + dot) return std::nullopt;
  auto [b, eb] = std::from_chars(text.data() + dot + 1, end, p.id);
  if (eb != std::errc() || b != end || p.id < -1) return std::nullopt;
  return p;
}

std::vector<StoredEvent> EventReader::Read(const EventQuery& q) {
  const Position after = q.after.value_or(Position{0, -1});
  const auto micros = [](const std::optional<TimePoint>& t) -> std::optional<std::int64_t> {
    if (!t) return std::nullopt;
    return ToUnixMicros(*t);
  };
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::vector<StoredEvent> out;
    const pqxx::result rows = tx.exec_params(
        fmt::format(
            "SELECT writer_xid::text, id, topic, kafka_partition, kafka_offset, {0}, device_id,"
            " message_id, correlation_id, content_type, content_encoding, {1},"
            " system_properties::text, application_properties::text, body, {2}"
            " FROM d2c_events WHERE consumer_group = $1 AND ($2::text IS NULL OR device_id = $2)"
            " AND ($3::bigint IS NULL OR enqueued_time >= {3})"
            " AND ($4::bigint IS NULL OR enqueued_time < {4})"
            " AND writer_xid < pg_snapshot_xmin(pg_current_snapshot())"
            " AND (writer_xid, id) > ($5::text::xid8, $6)"
            " ORDER BY writer_xid, id LIMIT $7",
            pg::MicrosOf("enqueued_time"), pg::MicrosOf("creation_time"), pg::MicrosOf("landed_at"),
            pg::TimestampFromMicros("$3"), pg::TimestampFromMicros("$4")),
        q.group, q.device_id, micros(q.from), micros(q.to), std::to_string(after.xid), after.id,
        static_cast<std::int64_t>(q.limit));
    for (const auto& r : rows) {
      StoredEvent e;
      e.position = Position{std::stoull(r[0].as<std::string>()), r[1].as<std::int64_t>()};
      e.topic = r[2].as<std::string>();
      e.partition = r[3].as<std::int32_t>();
      e.offset = r[4].as<std::int64_t>();
      e.event.enqueued_time = FromUnixMicros(r[5].as<std::int64_t>());
      e.event.device_id = r[6].as<std::string>();
      e.event.message_id = Opt<std::string>(r[7]);
      e.event.correlation_id = Opt<std::string>(r[8]);
      e.event.content_type = Opt<std::string>(r[9]);
      e.event.content_encoding = Opt<std::string>(r[10]);
      if (!r[11].is_null()) e.event.creation_time = FromUnixMicros(r[11].as<std::int64_t>());
      e.event.system_properties = JsonMap(r[12].as<std::string>());
      e.event.application_properties = JsonMap(r[13].as<std::string>());
      e.event.body = pqxx::binarystring(r[14]).str();
      e.landed_at = FromUnixMicros(r[15].as<std::int64_t>());
      out.push_back(std::move(e));
    }
    return out;
  });
}

Position EventReader::Now() {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    // Everything below the oldest running transaction is past; a
    // transaction at it may still write.
    const auto xmin =
        tx.exec1("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")[0].as<std::string>();
    return Position{std::stoull(xmin) - 1, std::numeric_limits<std::int64_t>::max()};
  });
}

}  // namespace ferry::d2c
