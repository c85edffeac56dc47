#pragma once

// What the D2C tables' columns hold, written once for the event store, the
// checkpoints and the dead letters: text forms for COPY and parameters, and
// the checkpoint fence every writer of a partition takes first. Internal to
// store/d2c.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "core/clock.h"
#include "core/d2c/landing_plan.h"
#include "core/d2c/record.h"
#include "store/d2c/checkpoint_store.h"

namespace ferry::d2c::sql {

// "YYYY-MM-DD HH:MM:SS.ffffff+00".
[[nodiscard]] std::string Time(TimePoint t);
[[nodiscard]] std::optional<std::string> Time(const std::optional<TimePoint>& t);
// bytea as COPY text: "\x" and hex digits.
[[nodiscard]] std::string Hex(std::string_view bytes);
// A JSON object of `m`, with `extra` (enrichments) replacing same-named keys.
[[nodiscard]] std::string Json(const std::map<std::string, std::string>& m,
                               const std::vector<std::pair<std::string, std::string>>& extra = {});
// A record's headers as kept with a dead letter: [{name, value}], base64.
[[nodiscard]] std::string HeadersJson(const KafkaRecord& r);
// The record's own timestamp, when it is one PostgreSQL can hold.
[[nodiscard]] std::optional<std::string> RecordTime(const KafkaRecord& r);
// A data error (class 22 or 23, or 54000): PostgreSQL refused a row, not
// the connection.
[[nodiscard]] bool IsDataError(const pqxx::sql_error& e);

// d2c_events' columns, in the order EventRow gives them.
[[nodiscard]] const std::vector<std::string>& EventColumns();
[[nodiscard]] std::string EventColumnList();

// The fence: the checkpoint if `epoch` is still current, locked for the
// rest of the transaction (a zombie's concurrent batch waits, then finds
// itself fenced); nullopt when the epoch moved on.
[[nodiscard]] std::optional<CheckpointState> LockCheckpoint(pqxx::dbtransaction& tx,
                                                            const PartitionId& id,
                                                            std::int64_t epoch);

// What a write adds to the partition's accounting columns.
struct Counts {
  std::int64_t dropped = 0;
  std::int64_t routed_elsewhere = 0;
  std::int64_t replay_skipped = 0;
  std::optional<std::int64_t> route_version;
};

// Moves the checkpoint (and the high offset) to `next_offset`, never
// backwards, and adds `counts`.
void AdvanceCheckpoint(pqxx::dbtransaction& tx, const PartitionId& id, std::int64_t next_offset,
                       const Counts& counts = {});

// Registry fields for `$device.` enrichments of `devices`.
[[nodiscard]] std::map<std::string, routing::DeviceFields> LoadDeviceFields(
    pqxx::dbtransaction& tx, const std::vector<std::string>& devices);

// Writes `rows` of partition `id` to d2c_events by COPY.
void CopyEvents(pqxx::dbtransaction& tx, const PartitionId& id, const std::vector<StoreRow>& rows);
// Writes those of `rows` that are neither in d2c_events nor in the dead
// letters yet (a replay, a re-drive), through a staging table (once per
// transaction); returns how many were written.
std::size_t InsertNewEvents(pqxx::dbtransaction& tx, const PartitionId& id,
                            const std::vector<StoreRow>& rows);

// Writes dead letters by COPY.
void CopyDeadLetters(pqxx::dbtransaction& tx, const PartitionId& id,
                     const std::vector<const ClassifiedRecord*>& dead);
// Keeps a replayed dead letter only if the record is not in the store or the
// dead letters yet; returns whether it was written.
bool InsertNewDeadLetter(pqxx::dbtransaction& tx, const PartitionId& id,
                         const ClassifiedRecord& dead);

}  // namespace ferry::d2c::sql
