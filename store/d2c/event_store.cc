#include "store/d2c/event_store.h"

#include <algorithm>

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
// Plans and lands [begin, end) of `batch`. With `refused`, every decodable
// record is dead-lettered as a data error (the last step of isolating a row
// PostgreSQL refuses).
//
// Kafka endpoints are acknowledged before the checkpoint commits, but not
// waited for inside the landing transaction: that would hold the partition's
// checkpoint lock, a pooled connection and an open transaction for as long
// as the endpoint takes (up to the sink's timeout when it is down), and the
// next owner's claim or an operator's reset would wait as long
// (EventStoreTest.AClaimDoesNotWaitForAnEndpointsAcknowledgements). So a
// batch with endpoint sends is planned in a short first transaction, sent,
// then written in a second, fenced again: a batch fenced in between has
// sent records the next owner sends again (endpoints get at-least-once, as
// after a crash); the store still gets each record once.
LandingOutcome EventStore::LandOnce(const LandingBatch& batch, std::size_t begin, std::size_t end,
                                    TimePoint now, const routing::RouteSet& routes,
                                    const std::optional<std::string>& refused) {
  const Classified classified =
      Classify(batch.records, begin, end, now, refused ? DayRange{} : Days(), routes, refused);
  const auto plan_in = [&](pqxx::dbtransaction& tx, const CheckpointState& checkpoint) {
    std::map<std::string, routing::DeviceFields> fields;
    if (routes.needs_device_fields()) {
      fields = sql::LoadDeviceFields(tx, DevicesToEnrich(classified, checkpoint));
    }
    return Plan(classified, checkpoint, fields, routes, hub_name_);
  };
  LandingOutcome out;
  out.transactions = 1;
  out.next_offset = batch.records[end - 1].offset + 1;

  std::optional<std::pair<CheckpointState, LandingPlan>> sent;
  const bool to_kafka = std::any_of(classified.records.begin(), classified.records.end(),
                                    [](const ClassifiedRecord& c) { return !c.kafka.empty(); });
  if (to_kafka) {
    std::optional<CheckpointState> checkpoint;
    LandingPlan plan;
    pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
      checkpoint = sql::LockCheckpoint(tx, batch.id, batch.epoch);
      if (checkpoint) plan = plan_in(tx, *checkpoint);
    });
    if (!checkpoint) {
      out.fenced = true;
      return out;
    }
    Deliver(plan.sends);
    sent.emplace(*checkpoint, std::move(plan));
    out.transactions = 2;
  }

  const int transactions = out.transactions;
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    out = LandingOutcome{};
    out.transactions = transactions;
    out.next_offset = batch.records[end - 1].offset + 1;
    out.undefined = classified.undefined;
    const std::optional<CheckpointState> checkpoint =
        sql::LockCheckpoint(tx, batch.id, batch.epoch);
    if (!checkpoint) {
      out.fenced = true;
      return;
    }
    // Only this epoch's owner moves the checkpoint, so it is what the sent
    // plan was made against; were it not, the plan is made again here.
    LandingPlan replanned;
    const LandingPlan* plan = nullptr;
    if (sent && sent->first == *checkpoint) {
      plan = &sent->second;
    } else {
      replanned = plan_in(tx, *checkpoint);
      Deliver(replanned.sends);  // none unless the checkpoint moved
      plan = &replanned;
    }
    Apply(tx, batch.id, *plan, routes, out);
  });
  return out;
}

// Writes a plan: the store's rows (a replay's only where new), dead letters,
// and the checkpoint with its counts.
void EventStore::Apply(pqxx::dbtransaction& tx, const PartitionId& id, const LandingPlan& plan,
                       const routing::RouteSet& routes, LandingOutcome& out) {
  for (const Oversized& o : plan.oversized) {
    ++out.oversized[o.endpoint];
    Logger()->warn(
        "message not delivered to endpoint: over 256 KB with its enrichments endpoint=\"{}\""
        " partition={} offset={} bytes={}",
        o.endpoint, o.record->partition, o.record->offset, o.bytes);
  }
  out.routed = plan.routed;
  out.dropped = plan.dropped;

  sql::CopyEvents(tx, id, plan.fresh);
  for (const StoreRow& row : plan.fresh) out.bytes += row.event->body.size();
  const std::size_t replayed = sql::InsertNewEvents(tx, id, plan.replayed);
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
  sql::CopyDeadLetters(tx, id, plan.dead_letters);
  for (const ClassifiedRecord* c : plan.dead_letters) ++out.dead_letters[c->dead->reason];
  for (const ClassifiedRecord* c : plan.replayed_dead_letters) {
    if (sql::InsertNewDeadLetter(tx, id, *c)) {
      ++out.dead_letters[c->dead->reason];
    } else {
      ++counts.replay_skipped;
    }
  }
  out.replay_skipped = static_cast<std::size_t>(counts.replay_skipped);
  sql::AdvanceCheckpoint(tx, id, plan.next_offset, counts);
}

}  // namespace ferry::d2c
