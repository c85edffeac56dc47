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
      " content_encoding, properties::text, body, device_generation_id, {}, {}, state, "
      "delivery_count,"
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
  for (auto it = props.begin(); it != props.end(); ++it)
    m.properties[it.key()] = it->get<std::string>();
  m.body = pqxx::binarystring(r[9]).str();
  m.device_generation_id = r[10].as<std::string>();
  m.enqueued_at = FromUnixMicros(r[11].as<std::int64_t>());
  m.lifecycle.expires_at = FromUnixMicros(r[12].as<std::int64_t>());
  m.lifecycle.state = StateFromName(r[13].as<std::string>()).value_or(State::kEnqueued);
  m.lifecycle.delivery_count = r[14].as<int>();
  m.lifecycle.lock_token = r[15].is_null() ? "" : r[15].as<std::string>();
  m.lifecycle.lock_until = OptTime(r[16]);
  m.first_delivered_at = OptTime(r[17]);
  m.lifecycle.outcome = r[18].is_null()
                            ? Outcome::kNone
                            : OutcomeFromName(r[18].as<std::string>()).value_or(Outcome::kNone);
  m.lifecycle.outcome_at = OptTime(r[19]);
  return m;
}

std::optional<std::int64_t> Micros(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return ToUnixMicros(*t);
}

std::string Description(Outcome o) {
  switch (o) {
    case Outcome::kSuccess:
      return "Success";
    case Outcome::kExpired:
      return "Message expired";
    case Outcome::kDeliveryCountExceeded:
      return "Delivery count exceeded";
    case Outcome::kRejected:
      return "Message rejected";
    case Outcome::kPurged:
      return "Message purged";
    case Outcome::kNone:
      return "";
  }
  return "";
}

// Writes the lifecycle part of `m` back; when this write gives the message
// its outcome and the sender's ack asks for it, writes the feedback record
// in the same transaction, NOTIFYs `ferry_feedback` and adds its status to
// `written`.
void WriteLifecycle(pqxx::dbtransaction& tx, const StoredMessage& m,
                    FeedbackWritten* written = nullptr, Outcome before = Outcome::kNone,
                    std::chrono::seconds feedback_ttl = std::chrono::seconds(0)) {
  const Message& l = m.lifecycle;
  if (before == Outcome::kNone && l.outcome != Outcome::kNone && l.outcome_at &&
      WantsFeedback(m.ack, l.outcome)) {
    tx.exec_params0(fmt::format("INSERT INTO c2d_feedback (device_id, device_generation_id, "
                                "original_message_id, sequence_number,"
                                " status, description, enqueued_at, expires_at) VALUES ($1, $2, "
                                "$3, $4, $5, $6, {}, {})",
                                pg::TimestampFromMicros("$7"), pg::TimestampFromMicros("$8")),
                    m.device_id, m.device_generation_id, m.message_id, m.sequence_number,
                    std::string(OutcomeName(l.outcome)), Description(l.outcome),
                    ToUnixMicros(*l.outcome_at), ToUnixMicros(*l.outcome_at + feedback_ttl));
    tx.exec("SELECT pg_notify('ferry_feedback', '')");
    if (written != nullptr) written->push_back(l.outcome);
  }
  tx.exec_params0(
      fmt::format("UPDATE c2d_messages SET state = $3, delivery_count = $4, lock_token = $5,"
                  " lock_until = {}, first_delivered_at = {}, outcome = $8, outcome_at = {}"
                  " WHERE device_id = $1 AND sequence_number = $2",
                  pg::TimestampFromMicros("$6"), pg::TimestampFromMicros("$7"),
                  pg::TimestampFromMicros("$9")),
      m.device_id, m.sequence_number, std::string(StateName(l.state)), l.delivery_count,
      l.lock_token.empty() ? std::nullopt : std::optional<std::string>(l.lock_token),
      Micros(l.lock_until), Micros(m.first_delivered_at),
      l.outcome == Outcome::kNone ? std::nullopt
                                  : std::optional<std::string>(OutcomeName(l.outcome)),
      Micros(l.outcome_at));
}

// The device's status, or nullopt when it does not exist.
std::optional<std::string> DeviceStatus(pqxx::dbtransaction& tx, const std::string& device_id) {
  const pqxx::result r =
      tx.exec_params("SELECT status FROM devices WHERE device_id = $1", device_id);
  if (r.empty()) return std::nullopt;
  return r[0][0].as<std::string>();
}

[[noreturn]] void DeviceNotFound(const std::string& device_id) {
  throw Error(Reason::kDeviceNotFound,
              fmt::format("device \"{}\" does not exist or is disabled", device_id));
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

std::string NewLockToken() {
  return Hex(auth::RandomBytes(16));
}

SendResult Store::Send(const OutgoingMessage& in, TimePoint now) {
  // One round trip (round trips, not rows, are what a send costs): the
  // ferry_c2d_send function (migration 0008) locks the device, checks the
  // message id and the depth, inserts and wakes receivers, as one autocommit
  // statement. Repeating it after a lost connection is harmless: the message
  // id makes a second attempt answer with the row the first one stored.
  nlohmann::json props = nlohmann::json::object();
  for (const auto& [k, v] : in.properties) props[k] = v;
  static const std::string sql = fmt::format(
      "SELECT s.result, {} FROM ferry_c2d_send($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, {}, {}, "
      "$12) s"
      ", LATERAL (SELECT (s.msg).*) m",
      Columns(), pg::TimestampFromMicros("$10"), pg::TimestampFromMicros("$11"));
  const auto [result, message] = pg::WithAutocommit(pool_, [&](pqxx::transaction_base& tx) {
    const pqxx::result rows = pg::ExecPrepared(
        tx, "ferry_c2d_send", sql, in.device_id, in.message_id, in.correlation_id, in.user_id,
        std::string(AckName(in.ack)), in.content_type, in.content_encoding, props.dump(),
        pqxx::binarystring(in.body), ToUnixMicros(now), ToUnixMicros(in.expires_at),
        static_cast<std::int64_t>(max_depth_));
    if (rows.size() != 1) throw Error(Reason::kServerError, "ferry_c2d_send answered no row");
    const pqxx::row r = rows[0];
    const auto result = r[0].as<std::string>();
    return std::pair{
        result, r[1].is_null() ? std::optional<StoredMessage>() : FromRow(r.slice(1, r.size()))};
  });
  if (result == "not_found") DeviceNotFound(in.device_id);
  if (result == "full") {
    throw Error(
        Reason::kDeviceMaximumQueueDepthExceeded,
        fmt::format("device \"{}\" already has {} pending messages", in.device_id, max_depth_));
  }
  if (!message)
    throw Error(Reason::kServerError, "ferry_c2d_send answered " + result + " without a message");
  return SendResult{*message, result == "duplicate"};
}

ReceiveResult Store::Receive(const std::string& device_id, TimePoint now) {
  // One autocommit statement locks the oldest deliverable message (what
  // lifecycle Lock() does: Invisible under a new token until now + lock);
  // repeating it after a lost connection at worst locks a second message
  // while the first one's lock lapses (each attempt under a token of its own,
  // so that one Complete can never settle both). Only an empty queue takes a
  // second statement, for the device's status and the next lock lapse.
  static const std::string lock_sql = fmt::format(
      "UPDATE c2d_messages SET state = 'Invisible', lock_token = $3, lock_until = {1},"
      " first_delivered_at = coalesce(first_delivered_at, {0})"
      " WHERE (device_id, sequence_number) = (SELECT device_id, sequence_number FROM c2d_messages"
      " WHERE device_id = $1 AND state IN ('Enqueued', 'Invisible') AND expires_at > {0}"
      " AND (state = 'Enqueued' OR lock_until <= {0})"
      " ORDER BY sequence_number LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {2}",
      pg::TimestampFromMicros("$2"), pg::TimestampFromMicros("$4"), Columns());
  static const std::string empty_sql = fmt::format(
      "SELECT d.status, (SELECT {1} FROM c2d_messages WHERE device_id = $1 AND state = 'Invisible'"
      " AND lock_until > {0} AND expires_at > {0}) FROM (SELECT $1::text AS device_id) k"
      " LEFT JOIN devices d ON d.device_id = k.device_id",
      pg::TimestampFromMicros("$2"), pg::MicrosOf("min(lock_until)"));
  return pg::WithAutocommit(pool_, [&](pqxx::transaction_base& tx) {
    ReceiveResult out;
    const std::string token = NewLockToken();
    const pqxx::result locked =
        pg::ExecPrepared(tx, "ferry_c2d_receive", lock_sql, device_id, ToUnixMicros(now), token,
                         ToUnixMicros(now + limits_.lock));
    if (!locked.empty()) {
      out.message = FromRow(locked[0]);
      return out;
    }
    const pqxx::result rows =
        pg::ExecPrepared(tx, "ferry_c2d_receive_empty", empty_sql, device_id, ToUnixMicros(now));
    const pqxx::row r = rows.at(0);
    if (r[0].is_null() || r[0].as<std::string>() != "enabled") DeviceNotFound(device_id);
    out.next_lapse = OptTime(r[1]);
    return out;
  });
}

std::optional<SettleResult> Store::TryComplete(const std::string& device_id,
                                               const std::string& lock_token, TimePoint now) {
  // The common settlement in one autocommit statement: what lifecycle
  // Complete() does to a message whose lock this token holds, with the
  // feedback record its ack asks for and the Watch wake-up. Anything else
  // (lock lost, a repeat, no such device) takes Settle's transaction, which
  // tells them apart. Repeating it after a lost connection finds nothing to
  // update and that transaction answers "already completed".
  static const std::string sql = fmt::format(
      "WITH done AS (UPDATE c2d_messages SET state = 'Completed', outcome = 'Success', outcome_at "
      "= {0}"
      " WHERE device_id = $1 AND lock_token = $2 AND state = 'Invisible' AND lock_until > {0} "
      "RETURNING *),"
      " fb AS (INSERT INTO c2d_feedback (device_id, device_generation_id, original_message_id,"
      " sequence_number, status, description, enqueued_at, expires_at)"
      " SELECT device_id, device_generation_id, message_id, sequence_number, 'Success', $4, {0}, "
      "{1}"
      " FROM done WHERE ack IN ('positive', 'full') RETURNING 1)"
      " SELECT {2}, EXISTS (SELECT 1 FROM fb),"
      " CASE WHEN EXISTS (SELECT 1 FROM fb) THEN pg_notify('ferry_feedback', '') END FROM done",
      pg::TimestampFromMicros("$3"), pg::TimestampFromMicros("$5"), Columns());
  return pg::WithAutocommit(pool_, [&](pqxx::transaction_base& tx) -> std::optional<SettleResult> {
    const pqxx::result r =
        pg::ExecPrepared(tx, "ferry_c2d_complete", sql, device_id, lock_token, ToUnixMicros(now),
                         Description(Outcome::kSuccess), ToUnixMicros(now + feedback_.ttl));
    if (r.empty()) return std::nullopt;
    SettleResult done{FromRow(r[0]), false, {}};
    if (r[0][r[0].size() - 2].as<bool>()) done.feedback.push_back(Outcome::kSuccess);
    return done;
  });
}

SettleResult Store::Settle(const std::string& device_id, const std::string& lock_token,
                           Settlement kind, TimePoint now) {
  if (kind == Settlement::kComplete) {
    if (auto done = TryComplete(device_id, lock_token, now)) return std::move(*done);
  }
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result found = tx.exec_params(
        fmt::format(
            "SELECT {} FROM c2d_messages WHERE device_id = $1 AND lock_token = $2 FOR UPDATE",
            Columns()),
        device_id, lock_token);
    if (found.empty()) {
      if (!DeviceStatus(tx, device_id)) DeviceNotFound(device_id);
      throw Error(Reason::kDeviceMessageLockLost,
                  "no message is locked with this lock token (the lock lapsed?)");
    }
    StoredMessage m = FromRow(found[0]);
    const Outcome before = m.lifecycle.outcome;
    Result r;
    switch (kind) {
      case Settlement::kComplete:
        r = Complete(m.lifecycle, lock_token, now);
        break;
      case Settlement::kAbandon:
        r = Abandon(m.lifecycle, lock_token, now, limits_);
        break;
      case Settlement::kReject:
        r = Reject(m.lifecycle, lock_token, now);
        break;
    }
    switch (r.verdict) {
      case Verdict::kDone:
        break;
      case Verdict::kAlreadyDone:
        return SettleResult{std::move(m), true, {}};
      case Verdict::kLockLost:
      case Verdict::kNotAllowed:
        throw Error(Reason::kDeviceMessageLockLost, "the message's lock lapsed or was settled");
    }
    FeedbackWritten written;
    WriteLifecycle(tx, m, &written, before, feedback_.ttl);
    if (r.deliverable_again) tx.exec_params("SELECT pg_notify('ferry_c2d', $1)", device_id);
    return SettleResult{std::move(m), false, std::move(written)};
  });
}

PurgeResult Store::Purge(const std::string& device_id, TimePoint now, const audit::Entry* audit) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    if (!DeviceStatus(tx, device_id)) DeviceNotFound(device_id);
    PurgeResult out;
    for (const auto& row : tx.exec_params(fmt::format("SELECT {} FROM c2d_messages WHERE device_id "
                                                      "= $1 AND state IN ('Enqueued', 'Invisible')"
                                                      " ORDER BY sequence_number FOR UPDATE",
                                                      Columns()),
                                          device_id)) {
      StoredMessage m = FromRow(row);
      const Outcome before = m.lifecycle.outcome;
      if (c2d::Purge(m.lifecycle, now).verdict != Verdict::kDone) continue;
      WriteLifecycle(tx, m, &out.feedback, before, feedback_.ttl);
      ++out.purged;
    }
    if (audit != nullptr) audit::Write(tx, *audit, {{"purged", out.purged}});
    return out;
  });
}

StoredMessage Store::Get(const std::string& device_id, const std::optional<std::string>& message_id,
                         std::optional<std::int64_t> sequence_number) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result r =
        tx.exec_params(fmt::format("SELECT {} FROM c2d_messages WHERE device_id = $1 AND ($2::text "
                                   "IS NULL OR message_id = $2)"
                                   " AND ($3::bigint IS NULL OR sequence_number = $3)",
                                   Columns()),
                       device_id, message_id, sequence_number);
    if (r.empty()) {
      if (!DeviceStatus(tx, device_id)) DeviceNotFound(device_id);
      throw Error(Reason::kMessageNotFound,
                  fmt::format("device \"{}\" has no such message", device_id));
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
                         " AND ($3 OR state IN ('Enqueued', 'Invisible')) ORDER BY sequence_number "
                         "LIMIT $4",
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
        fmt::format(
            "SELECT coalesce(sum(n), 0)::bigint, count(*) FILTER (WHERE n >= $2) FROM"
            " (SELECT count(*) AS n FROM c2d_messages WHERE state IN ('Enqueued', 'Invisible')"
            " AND expires_at > {} GROUP BY device_id) q",
            pg::TimestampFromMicros("$1")),
        ToUnixMicros(now), max_depth_);
    return QueueStats{r[0].as<std::int64_t>(), r[1].as<std::int64_t>()};
  });
}

std::int64_t Store::CountLocked(const std::string& device_id,
                                const std::vector<std::string>& lock_tokens, TimePoint now) {
  if (lock_tokens.empty()) return 0;
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    return tx
        .exec_params1(
            fmt::format(
                "SELECT count(*) FROM c2d_messages WHERE device_id = $1 AND state = 'Invisible'"
                " AND lock_until > {} AND lock_token IN (SELECT "
                "jsonb_array_elements_text($3::jsonb))",
                pg::TimestampFromMicros("$2")),
            device_id, ToUnixMicros(now), nlohmann::json(lock_tokens).dump())[0]
        .as<std::int64_t>();
  });
}

std::int64_t Store::ReleaseLapsedLocks(TimePoint now, int limit) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::set<std::string> woken;
    std::int64_t n = 0;
    for (const auto& row : tx.exec_params(
             fmt::format(
                 "SELECT {} FROM c2d_messages WHERE state = 'Invisible' AND lock_until <= {}"
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

ExpireResult Store::ExpireMessages(TimePoint now, int limit) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    ExpireResult out;
    for (const auto& row :
         tx.exec_params(fmt::format("SELECT {} FROM c2d_messages WHERE state IN ('Enqueued', "
                                    "'Invisible') AND expires_at <= {}"
                                    " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                                    Columns(), pg::TimestampFromMicros("$1")),
                        ToUnixMicros(now), limit)) {
      StoredMessage m = FromRow(row);
      const Outcome before = m.lifecycle.outcome;
      if (Expire(m.lifecycle, now).verdict != Verdict::kDone) continue;
      WriteLifecycle(tx, m, &out.feedback, before, feedback_.ttl);
      ++out.expired;
    }
    return out;
  });
}

std::int64_t Store::TrimFinished(TimePoint now, std::chrono::seconds retention, int limit) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    return static_cast<std::int64_t>(
        tx.exec_params(
              fmt::format(
                  "DELETE FROM c2d_messages WHERE (device_id, sequence_number) IN"
                  " (SELECT device_id, sequence_number FROM c2d_messages"
                  " WHERE outcome_at IS NOT NULL AND outcome_at < {} AND state IN"
                  " ('Completed', 'DeadLettered', 'Purged') LIMIT $2 FOR UPDATE SKIP LOCKED)",
                  pg::TimestampFromMicros("$1")),
              ToUnixMicros(now - retention), limit)
            .affected_rows());
  });
}

}  // namespace ferry::c2d
