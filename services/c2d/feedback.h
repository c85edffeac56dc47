#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "core/c2d/lifecycle.h"
#include "core/clock.h"
#include "core/executor.h"
#include "ferry/v1/feedback.grpc.pb.h"
#include "services/c2d/wake_hub.h"
#include "services/rpc/runtime.h"
#include "store/d2c/event_reader.h"

namespace ferry::pg {
class Pool;
}

namespace ferry::c2d {

inline constexpr std::size_t kMaxFeedbackBatch = 64;

struct FeedbackRecord {
  std::int64_t id = 0;
  d2c::Position position;
  std::string device_id;
  std::string device_generation_id;
  std::string original_message_id;
  std::int64_t sequence_number = 0;
  std::string status;
  std::string description;
  TimePoint enqueued_at;
};

struct FeedbackBatch {
  std::string lock_token;  // empty when no record was taken
  TimePoint lock_until;
  std::vector<FeedbackRecord> records;
};

// Table c2d_feedback (migration 0007). Rows are written by the C2D store in
// the outcome's transaction; this takes them in locked batches, settles
// them, reads them for Watch, and expires them. Thread-safe.
class FeedbackStore final {
 public:
  FeedbackStore(pg::Pool& pool, int max_delivery_count)
      : pool_(pool), max_delivery_count_(max_delivery_count) {}

  // Locks up to `max` deliverable records (Enqueued, or Invisible with a
  // lapsed lock; before their TTL) under one new token, FOR UPDATE SKIP
  // LOCKED so that competing receivers never share a record.
  FeedbackBatch Receive(TimePoint now, std::chrono::seconds lock,
                        std::size_t max = kMaxFeedbackBatch);
  // Throws ferry::Error(kDeviceMessageLockLost) when the token holds no
  // valid lock (a repeat of a completed batch answers OK).
  void Complete(const std::string& lock_token, TimePoint now);
  // Returns how many records reached the maximum delivery count and were
  // dropped.
  std::int64_t Abandon(const std::string& lock_token, TimePoint now);
  // Records after `after` in landing order, before their TTL, seen only
  // once every older writer has ended (the same rule as docs/event-store.md).
  std::vector<FeedbackRecord> Read(const d2c::Position& after, TimePoint now, std::size_t limit);
  // Deletes records past their TTL (at most `limit`); returns how many, and
  // in `undelivered` how many of them were never completed or dropped.
  std::int64_t ExpireRecords(TimePoint now, int limit, std::int64_t* undelivered);

 private:
  pg::Pool& pool_;
  const int max_delivery_count_;
};

struct FeedbackMetrics {
  explicit FeedbackMetrics(prometheus::Registry& registry);
  // Counts records written, one per status (what c2d::Store's results
  // report in `feedback`).
  void CountWritten(const std::vector<Outcome>& statuses);
  prometheus::Family<prometheus::Counter>& written;  // by status
  prometheus::Counter& delivered;
  prometheus::Counter& completed;
  prometheus::Counter& abandoned;
  prometheus::Counter& expired;
  prometheus::Counter& dropped;
  prometheus::Gauge& watch_streams;
};

// ferry.v1.Feedback. `hub` is woken by NOTIFY `ferry_feedback` (key "").
class FeedbackService final : public v1::Feedback::CallbackService {
 public:
  FeedbackService(rpc::RpcRuntime& runtime, FeedbackStore& store, WakeHub& hub, Executor& executor,
                  const Clock& clock, FeedbackMetrics& metrics);

  grpc::ServerUnaryReactor* Receive(grpc::CallbackServerContext* ctx,
                                    const v1::ReceiveFeedbackRequest* request,
                                    v1::FeedbackBatch* response) override;
  grpc::ServerUnaryReactor* Complete(grpc::CallbackServerContext* ctx,
                                     const v1::SettleFeedbackRequest* request,
                                     v1::SettleFeedbackResponse* response) override;
  grpc::ServerUnaryReactor* Abandon(grpc::CallbackServerContext* ctx,
                                    const v1::SettleFeedbackRequest* request,
                                    v1::SettleFeedbackResponse* response) override;
  grpc::ServerWriteReactor<v1::FeedbackBatch>* Watch(
      grpc::CallbackServerContext* ctx, const v1::WatchFeedbackRequest* request) override;

 private:
  class WatchReactor;

  rpc::RpcRuntime& runtime_;
  FeedbackStore& store_;
  WakeHub& hub_;
  Executor& executor_;
  const Clock& clock_;
  FeedbackMetrics& metrics_;
};

}  // namespace ferry::c2d
