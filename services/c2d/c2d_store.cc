#include "services/c2d/c2d_store.h"

#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "core/auth/base64.h"
#include "core/error.h"
#include "core/pg/sql_time.h"
#include "core/pg/transaction.h"

namespace ferry::c2d {
namespace {

const std::string& Columns() {
  static const std::string columns = fmt::format(
      "device_id, sequence_number, message_id, correlation_id, user_id, ack, content_type,"
      " content_encoding, properties::text, body, device_generation_id, {}, {}, state, delivery_count,"
      " lock_token, {}, {}, outcome, {}",
      pg::MicrosOf("enqueued_at"), pg::MicrosOf("expires_at"), pg::MicrosOf("lock_until"),
      pg::MicrosOf("first_delivered_at"), pg::MicrosOf("outcome_at"));
  return columns;
}

template <typename T>
std::optional<T> Opt(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<T>();
}

std::optional<TimePoint> OptTime(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return FromUnixMicros(f.as<std::int64_t>());
}

StoredMessage FromRow(const pqxx::row& r) {
  StoredMessage m;
  m.device_id = r[0].as<std::string>();
  m.sequence_number = r[1].as<std::int64_t>();
  m.message_id = r[2].as<std::string>();
  m.correlation_id = Opt<std::string>(r[3]);
  m.user_id = Opt<std::string>(r[4]);
  m.ack = AckFromName(r[5].as<std::string>()).value_or(Ack::kNone);
  m.content_type = Opt<std::string>(r[6]);
  m.content_encoding = Opt<std::string>(r[7]);
  const nlohmann::json props = nlohmann::json::parse(r[8].as<std::string>());
  for (auto it = props.begin(); it != props.end(); ++it) m.properties[it.key()] = it->get<std::string>();
  m.body = pqxx::binarystring(r[9]).str();
  m.device_generation_id = r[10].as<std::string>();
  m.enqueued_at = FromUnixMicros(r[11].as<std::int64_t>());
  m.lifecycle.expires_at = FromUnixMicros(r[12].as<std::int64_t>());
  m.lifecycle.state = StateFromName(r[13].as<std::string>()).value_or(State::kEnqueued);
  m.lifecycle.delivery_count = r[14].as<int>();
  m.lifecycle.lock_token = r[15].is_null() ? "" : r[15].as<std::string>();
  m.lifecycle.lock_until = OptTime(r[16]);
  m.first_delivered_at = OptTime(r[17]);
  m.lifecycle.outcome = r[18].is_null() ? Outcome::kNone : OutcomeFromName(r[18].as<std::string>()).value_or(Outcome::kNone);
  m.lifecycle.outcome_at = OptTime(r[19]);
  return m;
}

std::optional<std::int64_t> Micros(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return ToUnixMicros(*t);
}

std::string Description(Outcome o) {
  switch (o) {
    case Outcome::kSuccess: return "Success";
    case Outcome::kExpired: return "Message expired";
    case Outcome::kDeliveryCountExceeded: return "Delivery count exceeded";
    case Outcome::kRejected: return "Message rejected";
    case Outcome::kPurged: return "Message purged";
    case Outcome::kNone: return "";
  }
  return "";
}

// Feedback written in the current attempt (reset by each retry).
thread_local std::vector<Outcome>* written_feedback = nullptr;

// Writes the lifecycle part of `m` back; when this write gives the message
// its outcome and the sender's ack asks for it, writes the feedback record
// in the same transaction and NOTIFYs `ferry_feedback`.
void WriteLifecycle(pqxx::dbtransaction& tx, const StoredMessage& m, Outcome before = Outcome::kNone,
                    std::chrono::seconds feedback_ttl = std::chrono::seconds(0)) {
  const Message& l = m.lifecycle;
  if (before == Outcome::kNone && l.outcome != Outcome::kNone && l.outcome_at && WantsFeedback(m.ack, l.outcome)) {
    tx.exec_params0(
        fmt::format("INSERT INTO c2d_feedback (device_id, device_generation_id, original_message_id, sequence_number,"
                    " status, description, enqueued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, {}, {})",
                    pg::TimestampFromMicros("$7"), pg::TimestampFromMicros("$8")),
        m.device_id, m.device_generation_id, m.message_id, m.sequence_number, std::string(OutcomeName(l.outcome)),
        Description(l.outcome), ToUnixMicros(*l.outcome_at), ToUnixMicros(*l.outcome_at + feedback_ttl));
    tx.exec("SELECT pg_notify('ferry_feedback', '')");
    if (written_feedback != nullptr) written_feedback->push_back(l.outcome);
  }
  tx.exec_params0(
      fmt::format("UPDATE c2d_messages SET state = $3, delivery_count = $4, lock_token = $5,"
                  " lock_until = {}, first_delivered_at = {}, outcome = $8, outcome_at = {}"
                  " WHERE device_id = $1 AND sequence_number = $2",
                  pg::TimestampFromMicros("$6"), pg::TimestampFromMicros("$7"), pg::TimestampFromMicros("$9")),
      m.device_id, m.sequence_number, std::string(StateName(l.state)), l.delivery_count,
      l.lock_token.empty() ? std::nullopt : std::optional<std::string>(l.lock_token), Micros(l.lock_until),
      Micros(m.first_delivered_at),
      l.outcome == Outcome::kNone ? std::nullopt : std::optional<std::string>(OutcomeName(l.outcome)),
      Micros(l.outcome_at));
}

// The device's status, or nullopt when it does not exist.
std::optional<std::string> DeviceStatus(pqxx::dbtransaction& tx, const std::string& device_id) {
  const pqxx::result r = tx.exec_params("SELECT status FROM devices WHERE device_id = $1", device_id);
  if (r.empty()) return std::nullopt;
  return r[0][0].as<std::string>();
}

[[noreturn]] void DeviceNotFound(const std::string& device_id) {
  throw Error(Reason::kDeviceNotFound, fmt::format("device \"{}\" does not exist or is disabled", device_id));
}

std::string Hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    out += kHex[static_cast<unsigned char>(c) >> 4];
    out += kHex[static_cast<unsigned char>(c) & 15];
  }
  return out;
}

}  // namespace

std::string NewLockToken() { return Hex(auth::RandomBytes(16)); }

template <typename Fn>
auto Store::Transaction(Fn&& body) {
  std::vector<Outcome> written;
  auto run = [&](pqxx::dbtransaction& tx) {
    written.clear();
    written_feedback = &written;
    struct Reset {
      ~Reset() { written_feedback = nullptr; }
    } reset;
    return body(tx);
  };
  if constexpr (std::is_void_v<std::invoke_result_t<Fn&, pqxx::dbtransaction&>>) {
    pg::WithTransaction(pool_, run);
    if (on_feedback_) for (const Outcome o : written) on_feedback_(o);
  } else {
    auto result = pg::WithTransaction(pool_, run);
    if (on_feedback_) for (const Outcome o : written) on_feedback_(o);
    return result;
  }
}

SendResult Store::Send(const OutgoingMessage& in, TimePoint now) {
  // Three statements besides BEGIN and COMMIT (round trips, not rows, are
  // what a send costs): lock the device; count its queue (a statement of
  // its own, so that its snapshot is taken after the lock is granted: in
  // one statement with the lock a concurrent send's row would be missed);
  // take the next sequence number and insert.
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result device = tx.exec_params(
        "SELECT status, generation_id FROM devices WHERE device_id = $1 FOR NO KEY UPDATE", in.device_id);
    if (device.empty() || device[0][0].as<std::string>() != "enabled") DeviceNotFound(in.device_id);
    const pqxx::row counts = tx.exec_params1(
        fmt::format("SELECT EXISTS (SELECT 1 FROM c2d_messages WHERE device_id = $1 AND message_id = $2),"
                    " count(*), count(*) FILTER (WHERE state = 'Enqueued' OR lock_until <= {0})"
                    " FROM c2d_messages WHERE device_id = $1 AND state IN ('Enqueued', 'Invisible')"
                    " AND expires_at > {0}",
                    pg::TimestampFromMicros("$3")),
        in.device_id, in.message_id, ToUnixMicros(now));
    if (counts[0].as<bool>()) {
      const pqxx::row known = tx.exec_params1(
          fmt::format("SELECT {} FROM c2d_messages WHERE device_id = $1 AND message_id = $2", Columns()),
          in.device_id, in.message_id);
      return SendResult{FromRow(known), true};
    }
    if (counts[1].as<std::int64_t>() >= max_depth_) {
      throw Error(Reason::kDeviceMaximumQueueDepthExceeded,
                  fmt::format("device \"{}\" already has {} pending messages", in.device_id, max_depth_));
    }
    nlohmann::json props = nlohmann::json::object();
    for (const auto& [k, v] : in.properties) props[k] = v;
    const pqxx::row r = tx.exec_params1(
        fmt::format("WITH q AS (INSERT INTO c2d_queues (device_id, next_sequence) VALUES ($1, 2)"
                    " ON CONFLICT (device_id) DO UPDATE SET next_sequence = c2d_queues.next_sequence + 1"
                    " RETURNING next_sequence - 1 AS sequence)"
                    " INSERT INTO c2d_messages (device_id, sequence_number, message_id, correlation_id,"
                    " user_id, ack, content_type, content_encoding, properties, body, device_generation_id,"
                    " enqueued_at, expires_at, state) SELECT $1, q.sequence, $2, $3, $4, $5, $6, $7, $8::jsonb, $9,"
                    " $10, {}, {}, 'Enqueued' FROM q RETURNING {}",
                    pg::TimestampFromMicros("$11"), pg::TimestampFromMicros("$12"), Columns()),
        in.device_id, in.message_id, in.correlation_id, in.user_id, std::string(AckName(in.ack)),
        in.content_type, in.content_encoding, props.dump(), pqxx::binarystring(in.body),
        device[0][1].as<std::string>(), ToUnixMicros(now), ToUnixMicros(in.expires_at));
    // Wake receivers only when the queue had nothing they could take.
    if (counts[2].as<std::int64_t>() == 0) tx.exec_params("SELECT pg_notify('ferry_c2d', $1)", in.device_id);
    return SendResult{FromRow(r), false};
  });
}

ReceiveResult Store::Receive(const std::string& device_id, TimePoint now) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result found = tx.exec_params(
        fmt::format("SELECT {1} FROM c2d_messages WHERE device_id = $1 AND state IN ('Enqueued', 'Invisible')"
                    " AND expires_at > {0} AND (state = 'Enqueued' OR lock_until <= {0})"
                    " ORDER BY sequence_number LIMIT 1 FOR UPDATE SKIP LOCKED",
                    pg::TimestampFromMicros("$2"), Columns()),
        device_id, ToUnixMicros(now));
    ReceiveResult out;
    if (!found.empty()) {
      StoredMessage m = FromRow(found[0]);
      if (Lock(m.lifecycle, now, limits_, NewLockToken()).verdict == Verdict::kDone) {
        if (!m.first_delivered_at) m.first_delivered_at = now;
        WriteLifecycle(tx, m);
        out.message = std::move(m);
        return out;
      }
    }
    const auto status = DeviceStatus(tx, device_id);
    if (!status || *status != "enabled") DeviceNotFound(device_id);
    const pqxx::row lapse = tx.exec_params1(
        fmt::format("SELECT {1} FROM (SELECT min(lock_until) AS t FROM c2d_messages WHERE device_id = $1"
                    " AND state = 'Invisible' AND lock_until > {0} AND expires_at > {0}) q",
                    pg::TimestampFromMicros("$2"), pg::MicrosOf("t")),
        device_id, ToUnixMicros(now));
    out.next_lapse = OptTime(lapse[0]);
    return out;
  });
}

SettleResult Store::Settle(const std::string& device_id, const std::string& lock_token, Settlement kind,
                           TimePoint now) {
  return Transaction([&](pqxx::dbtransaction& tx) {
    const pqxx::result found = tx.exec_params(
        fmt::format("SELECT {} FROM c2d_messages WHERE device_id = $1 AND lock_token = $2 FOR UPDATE", Columns()),
        device_id, lock_token);
    if (found.empty()) {
      if (!DeviceStatus(tx, device_id)) DeviceNotFound(device_id);
      throw Error(Reason::kDeviceMessageLockLost, "no message is locked with this lock token (the lock lapsed?)");
    }
    StoredMessage m = FromRow(found[0]);
    const Outcome before = m.lifecycle.outcome;
    Result r;
    switch (kind) {
      case Settlement::kComplete: r = Complete(m.lifecycle, lock_token, now); break;
      case Settlement::kAbandon: r = Abandon(m.lifecycle, lock_token, now, limits_); break;
      case Settlement::kReject: r = Reject(m.lifecycle, lock_token, now); break;
    }
    switch (r.verdict) {
      case Verdict::kDone: break;
      case Verdict::kAlreadyDone: return SettleResult{std::move(m), true};
      case Verdict::kLockLost:
      case Verdict::kNotAllowed:
        throw Error(Reason::kDeviceMessageLockLost, "the message's lock lapsed or was settled");
    }
    WriteLifecycle(tx, m, before, feedback_.ttl);
    if (r.deliverable_again) tx.exec_params("SELECT pg_notify('ferry_c2d', $1)", device_id);
    return SettleResult{std::move(m), false};
  });
}

std::int64_t Store::Purge(const std::string& device_id, TimePoint now) {
  return Transaction([&](pqxx::dbtransaction& tx) {
    if (!DeviceStatus(tx, device_id)) DeviceNotFound(device_id);
    std::int64_t purged = 0;
    for (const auto& row : tx.exec_params(
             fmt::format("SELECT {} FROM c2d_messages WHERE device_id = $1 AND state IN ('Enqueued', 'Invisible')"
                         " ORDER BY sequence_number FOR UPDATE",
                         Columns()),
             device_id)) {
      StoredMessage m = FromRow(row);
      const Outcome before = m.lifecycle.outcome;
      if (c2d::Purge(m.lifecycle, now).verdict != Verdict::kDone) continue;
      WriteLifecycle(tx, m, before, feedback_.ttl);
      ++purged;
    }
    return purged;
  });
}

StoredMessage Store::Get(const std::string& device_id, const std::optional<std::string>& message_id,
                         std::optional<std::int64_t> sequence_number) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result r = tx.exec_params(
        fmt::format("SELECT {} FROM c2d_messages WHERE device_id = $1 AND ($2::text IS NULL OR message_id = $2)"
                    " AND ($3::bigint IS NULL OR sequence_number = $3)",
                    Columns()),
        device_id, message_id, sequence_number);
    if (r.empty()) {
      if (!DeviceStatus(tx, device_id)) DeviceNotFound(device_id);
      throw Error(Reason::kMessageNotFound, fmt::format("device \"{}\" has no such message", device_id));
    }
    return FromRow(r[0]);
  });
}

std::vector<StoredMessage> Store::List(const std::string& device_id, bool include_finished,
                                       std::int64_t after_sequence, std::size_t limit) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    if (!DeviceStatus(tx, device_id)) DeviceNotFound(device_id);
    std::vector<StoredMessage> out;
    for (const auto& r : tx.exec_params(
             fmt::format("SELECT {} FROM c2d_messages WHERE device_id = $1 AND sequence_number > $2"
                         " AND ($3 OR state IN ('Enqueued', 'Invisible')) ORDER BY sequence_number LIMIT $4",
                         Columns()),
             device_id, after_sequence, include_finished, static_cast<std::int64_t>(limit))) {
      out.push_back(FromRow(r));
    }
    return out;
  });
}

QueueStats Store::Stats(TimePoint now) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::row r = tx.exec_params1(
        fmt::format("SELECT coalesce(sum(n), 0)::bigint, count(*) FILTER (WHERE n >= $2) FROM"
                    " (SELECT count(*) AS n FROM c2d_messages WHERE state IN ('Enqueued', 'Invisible')"
                    " AND expires_at > {} GROUP BY device_id) q",
                    pg::TimestampFromMicros("$1")),
        ToUnixMicros(now), max_depth_);
    return QueueStats{r[0].as<std::int64_t>(), r[1].as<std::int64_t>()};
  });
}

std::int64_t Store::CountLocked(const std::string& device_id, const std::vector<std::string>& lock_tokens,
                                TimePoint now) {
  if (lock_tokens.empty()) return 0;
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    return tx.exec_params1(
                 fmt::format("SELECT count(*) FROM c2d_messages WHERE device_id = $1 AND state = 'Invisible'"
                             " AND lock_until > {} AND lock_token IN (SELECT jsonb_array_elements_text($3::jsonb))",
                             pg::TimestampFromMicros("$2")),
                 device_id, ToUnixMicros(now), nlohmann::json(lock_tokens).dump())[0]
        .as<std::int64_t>();
  });
}

std::int64_t Store::ReleaseLapsedLocks(TimePoint now, int limit) {
  return Transaction([&](pqxx::dbtransaction& tx) {
    std::set<std::string> woken;
    std::int64_t n = 0;
    for (const auto& row : tx.exec_params(
             fmt::format("SELECT {} FROM c2d_messages WHERE state = 'Invisible' AND lock_until <= {}"
                         " ORDER BY lock_until LIMIT $2 FOR UPDATE SKIP LOCKED",
                         Columns(), pg::TimestampFromMicros("$1")),
             ToUnixMicros(now), limit)) {
      StoredMessage m = FromRow(row);
      const Result r = ReleaseLapsedLock(m.lifecycle, now);
      if (r.verdict != Verdict::kDone) continue;
      WriteLifecycle(tx, m);
      if (r.deliverable_again) woken.insert(m.device_id);
      ++n;
    }
    for (const auto& device : woken) tx.exec_params("SELECT pg_notify('ferry_c2d', $1)", device);
    return n;
  });
}

std::int64_t Store::ExpireMessages(TimePoint now, int limit) {
  return Transaction([&](pqxx::dbtransaction& tx) {
    std::int64_t n = 0;
    for (const auto& row : tx.exec_params(
             fmt::format("SELECT {} FROM c2d_messages WHERE state IN ('Enqueued', 'Invisible') AND expires_at <= {}"
                         " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                         Columns(), pg::TimestampFromMicros("$1")),
             ToUnixMicros(now), limit)) {
      StoredMessage m = FromRow(row);
      const Outcome before = m.lifecycle.outcome;
      if (Expire(m.lifecycle, now).verdict != Verdict::kDone) continue;
      WriteLifecycle(tx, m, before, feedback_.ttl);
      ++n;
    }
    return n;
  });
}

std::int64_t Store::TrimFinished(TimePoint now, std::chrono::seconds retention, int limit) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    return static_cast<std::int64_t>(
        tx.exec_params(fmt::format("DELETE FROM c2d_messages WHERE (device_id, sequence_number) IN"
                                   " (SELECT device_id, sequence_number FROM c2d_messages"
                                   " WHERE outcome_at IS NOT NULL AND outcome_at < {} AND state IN"
                                   " ('Completed', 'DeadLettered', 'Purged') LIMIT $2 FOR UPDATE SKIP LOCKED)",
                                   pg::TimestampFromMicros("$1")),
                       ToUnixMicros(now - retention), limit)
            .affected_rows());
  });
}

}  // namespace ferry::c2d
