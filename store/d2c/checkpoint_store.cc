#include "store/d2c/checkpoint_store.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "core/pg/transaction.h"
#include "store/d2c/sql_rows.h"

namespace ferry::d2c {
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

}  // namespace

Claim CheckpointStore::ClaimPartition(const PartitionId& id, const std::string& owner) {
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

std::optional<std::int64_t> CheckpointStore::NextOffset(const PartitionId& id) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) -> std::optional<std::int64_t> {
    const pqxx::result r = tx.exec_params(
        "SELECT next_offset FROM d2c_checkpoints WHERE consumer_group = $1 AND topic = $2"
        " AND kafka_partition = $3",
        id.group, id.topic, id.partition);
    if (r.empty() || r[0][0].is_null()) return std::nullopt;
    return r[0][0].as<std::int64_t>();
  });
}

std::vector<CheckpointRow> CheckpointStore::Checkpoints(const std::string& group,
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

std::map<std::int32_t, std::pair<std::int64_t, std::string>> CheckpointStore::Epochs(
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

CheckpointRow CheckpointStore::ResetCheckpoint(const PartitionId& id, std::int64_t next_offset,
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

GapOutcome CheckpointStore::SkipDeleted(const PartitionId& id, std::int64_t epoch,
                                        std::int64_t from, std::int64_t to,
                                        const std::string& owner) {
  if (from < 0 || to <= from) {
    throw std::invalid_argument(fmt::format("SkipDeleted: bad range [{}, {})", from, to));
  }
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    GapOutcome out;
    const std::optional<CheckpointState> locked = sql::LockCheckpoint(tx, id, epoch);
    if (!locked || locked->next_offset != from) {
      out.fenced = true;
      return out;
    }
    const std::int64_t high = locked->high_offset.value_or(from);
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
    sql::AdvanceCheckpoint(tx, id, to, sql::Counts{.replay_skipped = out.replay_skipped});
    return out;
  });
}

}  // namespace ferry::d2c
