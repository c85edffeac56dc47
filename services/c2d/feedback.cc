#include "services/c2d/feedback.h"

#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>
#include <pqxx/pqxx>

#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pg/sql_time.h"
#include "core/pg/transaction.h"
#include "services/c2d/c2d_store.h"
#include "services/c2d/polling_reactor.h"
#include "services/rpc/proto_time.h"

namespace ferry::c2d {
namespace {

constexpr std::string_view kService = "ferry.v1.Feedback";
constexpr std::size_t kWatchBatch = 500;

const std::string& Columns() {
  static const std::string columns = fmt::format(
      "id, writer_xid::text, device_id, device_generation_id, original_message_id, sequence_number,"
      " status, description, {}",
      pg::MicrosOf("enqueued_at"));
  return columns;
}

FeedbackRecord FromRow(const pqxx::row& r) {
  FeedbackRecord f;
  f.id = r[0].as<std::int64_t>();
  f.position = d2c::Position{std::stoull(r[1].as<std::string>()), f.id};
  f.device_id = r[2].as<std::string>();
  f.device_generation_id = r[3].as<std::string>();
  f.original_message_id = r[4].as<std::string>();
  f.sequence_number = r[5].as<std::int64_t>();
  f.status = r[6].as<std::string>();
  f.description = r[7].as<std::string>();
  f.enqueued_at = FromUnixMicros(r[8].as<std::int64_t>());
  return f;
}

void Encode(const FeedbackRecord& f, v1::FeedbackRecord* out) {
  out->set_original_message_id(f.original_message_id);
  out->set_device_id(f.device_id);
  out->set_device_generation_id(f.device_generation_id);
  *out->mutable_enqueued_time() = rpc::ToProtoTime(f.enqueued_at);
  out->set_status_code(f.status);
  out->set_description(f.description);
  out->set_sequence_number(f.sequence_number);
  out->set_position(f.position.ToString());
}

}  // namespace

FeedbackBatch FeedbackStore::Receive(TimePoint now, std::chrono::seconds lock, std::size_t max) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    FeedbackBatch batch;
    batch.lock_token = NewLockToken();
    batch.lock_until = now + lock;
    for (const auto& row : tx.exec_params(
             fmt::format(
                 "UPDATE c2d_feedback SET state = 'Invisible', lock_token = $3, lock_until = {1}"
                 " WHERE id IN (SELECT id FROM c2d_feedback WHERE (state = 'Enqueued' OR"
                 " (state = 'Invisible' AND lock_until <= {0})) AND expires_at > {0}"
                 " ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING {2}",
                 pg::TimestampFromMicros("$1"), pg::TimestampFromMicros("$2"), Columns()),
             ToUnixMicros(now), ToUnixMicros(batch.lock_until), batch.lock_token,
             static_cast<std::int64_t>(max))) {
      batch.records.push_back(FromRow(row));
    }
    std::sort(batch.records.begin(), batch.records.end(),
              [](const FeedbackRecord& a, const FeedbackRecord& b) { return a.id < b.id; });
    if (batch.records.empty()) batch.lock_token.clear();
    return batch;
  });
}

void FeedbackStore::Complete(const std::string& lock_token, TimePoint now) {
  pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::row r = tx.exec_params1(
        fmt::format(
            "WITH done AS (UPDATE c2d_feedback SET state = 'Completed' WHERE lock_token = $1"
            " AND state = 'Invisible' AND lock_until > {} RETURNING 1)"
            " SELECT (SELECT count(*) FROM done),"
            " (SELECT count(*) FROM c2d_feedback WHERE lock_token = $1 AND state = 'Completed')",
            pg::TimestampFromMicros("$2")),
        lock_token, ToUnixMicros(now));
    if (r[0].as<std::int64_t>() == 0 && r[1].as<std::int64_t>() == 0) {
      throw Error(Reason::kDeviceMessageLockLost,
                  "no feedback batch is locked with this lock token (the lock lapsed?)");
    }
  });
}

std::int64_t FeedbackStore::Abandon(const std::string& lock_token, TimePoint now) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result r = tx.exec_params(
        fmt::format(
            "UPDATE c2d_feedback SET delivery_count = delivery_count + 1, lock_token = NULL, "
            "lock_until = NULL,"
            " state = CASE WHEN delivery_count + 1 >= $3 THEN 'Dropped' ELSE 'Enqueued' END"
            " WHERE lock_token = $1 AND state = 'Invisible' AND lock_until > {} RETURNING state",
            pg::TimestampFromMicros("$2")),
        lock_token, ToUnixMicros(now), max_delivery_count_);
    if (r.empty()) {
      throw Error(Reason::kDeviceMessageLockLost,
                  "no feedback batch is locked with this lock token (the lock lapsed?)");
    }
    std::int64_t dropped = 0;
    for (const auto& row : r) dropped += row[0].as<std::string>() == "Dropped" ? 1 : 0;
    if (dropped < static_cast<std::int64_t>(r.size()))
      tx.exec("SELECT pg_notify('ferry_feedback', '')");
    return dropped;
  });
}

std::vector<FeedbackRecord> FeedbackStore::Read(const d2c::Position& after, TimePoint now,
                                                std::size_t limit) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    std::vector<FeedbackRecord> out;
    for (const auto& row : tx.exec_params(
             fmt::format("SELECT {} FROM c2d_feedback WHERE writer_xid < "
                         "pg_snapshot_xmin(pg_current_snapshot())"
                         " AND (writer_xid, id) > ($1::text::xid8, $2) AND expires_at > {}"
                         " ORDER BY writer_xid, id LIMIT $4",
                         Columns(), pg::TimestampFromMicros("$3")),
             std::to_string(after.xid), after.id, ToUnixMicros(now),
             static_cast<std::int64_t>(limit))) {
      out.push_back(FromRow(row));
    }
    return out;
  });
}

std::int64_t FeedbackStore::ExpireRecords(TimePoint now, int limit, std::int64_t* undelivered) {
  return pg::WithTransaction(pool_, [&](pqxx::dbtransaction& tx) {
    const pqxx::result r = tx.exec_params(
        fmt::format("DELETE FROM c2d_feedback WHERE id IN (SELECT id FROM c2d_feedback WHERE "
                    "expires_at <= {}"
                    " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING state",
                    pg::TimestampFromMicros("$1")),
        ToUnixMicros(now), limit);
    std::int64_t open = 0;
    for (const auto& row : r) {
      const std::string state = row[0].as<std::string>();
      open += state == "Enqueued" || state == "Invisible" ? 1 : 0;
    }
    if (undelivered != nullptr) *undelivered = open;
    return static_cast<std::int64_t>(r.size());
  });
}

FeedbackMetrics::FeedbackMetrics(prometheus::Registry& r)
    : written(metrics::CounterFamily(r, "ferry_feedback_written_total",
                                     "Feedback records written, by status code.")),
      delivered(metrics::Counter(r, "ferry_feedback_delivered_total",
                                 "Feedback records handed out in locked batches.")),
      completed(
          metrics::Counter(r, "ferry_feedback_completed_total", "Feedback batches completed.")),
      abandoned(
          metrics::Counter(r, "ferry_feedback_abandoned_total", "Feedback batches abandoned.")),
      expired(
          metrics::Counter(r, "ferry_feedback_expired_total",
                           "Feedback records deleted at their TTL before anyone completed them.")),
      dropped(metrics::Counter(r, "ferry_feedback_dropped_total",
                               "Feedback records dropped at their maximum delivery count.")),
      watch_streams(metrics::Gauge(r, "ferry_feedback_watch_streams",
                                   "Feedback Watch streams open on this replica.")) {}

void FeedbackMetrics::CountWritten(const std::vector<Outcome>& statuses) {
  for (const Outcome o : statuses)
    written.Add({{"status", std::string(OutcomeName(o))}}).Increment();
}

FeedbackService::FeedbackService(rpc::RpcRuntime& runtime, FeedbackStore& store, WakeHub& hub,
                                 Executor& executor, const Clock& clock, FeedbackMetrics& metrics)
    : runtime_(runtime),
      store_(store),
      hub_(hub),
      executor_(executor),
      clock_(clock),
      metrics_(metrics) {}

grpc::ServerUnaryReactor* FeedbackService::Receive(grpc::CallbackServerContext* ctx,
                                                   const v1::ReceiveFeedbackRequest* request,
                                                   v1::FeedbackBatch* response) {
  return runtime_.Unary(
      ctx, kService, "Receive", request, response,
      [this](const rpc::Caller&, const v1::ReceiveFeedbackRequest& req, v1::FeedbackBatch& resp) {
        std::chrono::seconds lock{60};
        if (req.has_lock_duration()) {
          lock = std::chrono::seconds(
              google::protobuf::util::TimeUtil::DurationToSeconds(req.lock_duration()));
          if (lock < std::chrono::seconds(5) || lock > std::chrono::seconds(300)) {
            throw Error(Reason::kArgumentInvalid, "lock_duration must be 5 to 300 seconds");
          }
        }
        const FeedbackBatch batch = store_.Receive(clock_.Now(), lock);
        for (const auto& f : batch.records) Encode(f, resp.add_records());
        if (!batch.records.empty()) {
          resp.set_lock_token(batch.lock_token);
          *resp.mutable_lock_until() = rpc::ToProtoTime(batch.lock_until);
          metrics_.delivered.Increment(static_cast<double>(batch.records.size()));
        }
      });
}

grpc::ServerUnaryReactor* FeedbackService::Complete(grpc::CallbackServerContext* ctx,
                                                    const v1::SettleFeedbackRequest* request,
                                                    v1::SettleFeedbackResponse* response) {
  return runtime_.Unary(ctx, kService, "Complete", request, response,
                        [this](const rpc::Caller&, const v1::SettleFeedbackRequest& req,
                               v1::SettleFeedbackResponse&) {
                          if (req.lock_token().empty())
                            throw Error(Reason::kArgumentInvalid, "lock_token is required");
                          store_.Complete(req.lock_token(), clock_.Now());
                          metrics_.completed.Increment();
                        });
}

grpc::ServerUnaryReactor* FeedbackService::Abandon(grpc::CallbackServerContext* ctx,
                                                   const v1::SettleFeedbackRequest* request,
                                                   v1::SettleFeedbackResponse* response) {
  return runtime_.Unary(ctx, kService, "Abandon", request, response,
                        [this](const rpc::Caller&, const v1::SettleFeedbackRequest& req,
                               v1::SettleFeedbackResponse&) {
                          if (req.lock_token().empty())
                            throw Error(Reason::kArgumentInvalid, "lock_token is required");
                          metrics_.dropped.Increment(
                              static_cast<double>(store_.Abandon(req.lock_token(), clock_.Now())));
                          metrics_.abandoned.Increment();
                        });
}

// One Watch stream: batches in landing order from a position, woken by
// NOTIFY `ferry_feedback`, looking again each second while idle.
class FeedbackService::WatchReactor final : public PollingWriteReactor<v1::FeedbackBatch> {
 public:
  WatchReactor(FeedbackService& owner, grpc::CallbackServerContext* ctx,
               const v1::WatchFeedbackRequest& request)
      : PollingWriteReactor(owner.hub_, owner.executor_, ""),
        owner_(owner),
        ctx_(ctx),
        request_(request),
        position_text_(request.position()),
        started_(std::chrono::steady_clock::now()) {
    owner_.metrics_.watch_streams.Increment();
    Start();
  }
  ~WatchReactor() override { owner_.metrics_.watch_streams.Decrement(); }

 private:
  std::optional<WakeHub::Clock::time_point> Poll(v1::FeedbackBatch& out) override {
    if (!position_) {
      const rpc::Caller caller =
          owner_.runtime_.AuthorizeStream(ctx_, kService, "Watch", request_, std::nullopt);
      if (position_text_.empty()) {
        position_ = d2c::Position{0, -1};
      } else {
        position_ = d2c::Position::Parse(position_text_);
        if (!position_)
          throw Error(Reason::kArgumentInvalid, "position is not a position from Ferry");
      }
      log::Get("c2d")->info("feedback watch opened from={} by=\"{}\"", position_->ToString(),
                            caller.principal);
    }
    const auto records = owner_.store_.Read(*position_, owner_.clock_.Now(), kWatchBatch);
    // Nothing visible yet: NOTIFY wakes us; a record whose writer is visible
    // only once older transactions end is picked up by a 1 s poll.
    if (records.empty()) return WakeHub::Clock::now() + std::chrono::seconds(1);
    for (const auto& f : records) Encode(f, out.add_records());
    position_ = records.back().position;
    out.set_position(position_->ToString());
    return std::nullopt;
  }

  grpc::Status Status(const std::optional<Error>& error) override {
    return owner_.runtime_.EndStream(ctx_, kService, "Watch", started_, error);
  }

  FeedbackService& owner_;
  grpc::CallbackServerContext* ctx_;
  const v1::WatchFeedbackRequest request_;
  const std::string position_text_;
  const std::chrono::steady_clock::time_point started_;
  std::optional<d2c::Position> position_;
};

grpc::ServerWriteReactor<v1::FeedbackBatch>* FeedbackService::Watch(
    grpc::CallbackServerContext* ctx, const v1::WatchFeedbackRequest* request) {
  return new WatchReactor(*this, ctx, *request);
}

}  // namespace ferry::c2d
