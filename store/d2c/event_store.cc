#include "store/d2c/event_store.h"

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "core/error.h"
#include "core/log.h"
#include "core/pg/transaction.h"
#include "store/d2c/sql_rows.h"

namespace ferry::d2c {
namespace {

const std::shared_ptr<spdlog::logger>& Logger() {
  static const auto logger = log::Get("d2c");
  return logger;
}

}  // namespace

void EventStore::SetRouting(std::function<std::shared_ptr<const routing::RouteSet>()> routes,
                            EndpointSink* sink, std::string hub_name) {
  routes_ = std::move(routes);
  sink_ = sink;
  hub_name_ = std::move(hub_name);
}

std::shared_ptr<const routing::RouteSet> EventStore::Routes() {
  return routes_ ? routes_() : routing::RouteSet::StoreEverything();
}

void EventStore::Deliver(const std::vector<OutgoingRecord>& records) {
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
      return LandOnce(batch, begin, end, now, routes, std::nullopt);
    } catch (const pqxx::sql_error& e) {
      if (!sql::IsDataError(e)) throw;
      // A day partition may have been dropped or added meanwhile: re-read
      // them once, then isolate the row PostgreSQL refuses.
      if (attempt == 0) {
        RefreshDays();
        continue;
      }
      if (end - begin == 1) {
        LandingBatch one{batch.id, batch.epoch, {batch.records[begin]}};
        try {
          return LandOnce(one, 0, 1, now, routes, "PostgreSQL refused the row");
        } catch (const pqxx::sql_error& again) {
          if (!sql::IsDataError(again)) throw;
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
    if (!sql::LockCheckpoint(tx, one.id, one.epoch)) {
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
    sql::AdvanceCheckpoint(tx, one.id, out.next_offset);
    out.dead_letters[DeadLetterReason::kDataError] = 1;
  });
  return out;
}

// With an empty `days` every record is dead-lettered as a data error (the
// last step of isolating a row PostgreSQL refuses).
// Plans and applies [begin, end) of `batch` in one transaction. With
// `refused`, every decodable record is dead-lettered as a data error (the
// last step of isolating a row PostgreSQL refuses).
LandingOutcome EventStore::LandOnce(const LandingBatch& batch, std::size_t begin, std::size_t end,
                                    TimePoint now, const routing::RouteSet& routes,
                                    const std::optional<std::string>& refused) {
  const Classified classified =
      Classify(batch.records, begin, end, now, refused ? DayRange{} : Days(), routes, refused);
  LandingOutcome out;
  out.transactions = 1;
  out.next_offset = batch.records[end - 1].offset + 1;
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    out = LandingOutcome{};
    out.transactions = 1;
    out.next_offset = batch.records[end - 1].offset + 1;
    out.undefined = classified.undefined;
    // First the fence.
    const std::optional<CheckpointState> checkpoint =
        sql::LockCheckpoint(tx, batch.id, batch.epoch);
    if (!checkpoint) {
      out.fenced = true;
      return;
    }
    std::map<std::string, routing::DeviceFields> fields;
    if (routes.needs_device_fields()) {
      fields = sql::LoadDeviceFields(tx, DevicesToEnrich(classified, *checkpoint));
    }
    const LandingPlan plan = Plan(classified, *checkpoint, fields, routes, hub_name_);
    for (const Oversized& o : plan.oversized) {
      ++out.oversized[o.endpoint];
      Logger()->warn(
          "message not delivered to endpoint: over 256 KB with its enrichments endpoint=\"{}\""
          " partition={} offset={} bytes={}",
          o.endpoint, o.record->partition, o.record->offset, o.bytes);
    }
    // Kafka endpoints first: acknowledged before the checkpoint commits.
    Deliver(plan.sends);
    out.routed = plan.routed;
    out.dropped = plan.dropped;

    sql::CopyEvents(tx, batch.id, plan.fresh);
    for (const StoreRow& row : plan.fresh) out.bytes += row.event->body.size();
    const std::size_t replayed = sql::InsertNewEvents(tx, batch.id, plan.replayed);
    out.events = plan.fresh.size() + replayed;
    sql::Counts counts;
    counts.route_version = routes.version();
    counts.dropped = plan.dropped_counted;
    counts.routed_elsewhere = plan.routed_elsewhere;
    counts.replay_skipped =
        plan.replay_skipped + static_cast<std::int64_t>(plan.replayed.size() - replayed);
    if (const std::size_t n = plan.fresh.size() + plan.replayed.size(); n > 0) {
      out.routed[routing::kStoreEndpoint] += n;
    }

    // Dead letters: COPY when new; on a replay, kept only if the record is
    // nowhere yet (past retention: skipped, counted by the plan).
    sql::CopyDeadLetters(tx, batch.id, plan.dead_letters);
    for (const ClassifiedRecord* c : plan.dead_letters) ++out.dead_letters[c->dead->reason];
    for (const ClassifiedRecord* c : plan.replayed_dead_letters) {
      if (sql::InsertNewDeadLetter(tx, batch.id, *c)) {
        ++out.dead_letters[c->dead->reason];
      } else {
        ++counts.replay_skipped;
      }
    }
    out.replay_skipped = static_cast<std::size_t>(counts.replay_skipped);
    sql::AdvanceCheckpoint(tx, batch.id, out.next_offset, counts);
  });
  return out;
}

}  // namespace ferry::d2c
