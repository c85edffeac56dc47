#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/audit/audit.h"
#include "core/c2d/lifecycle.h"
#include "core/c2d/send.h"
#include "core/clock.h"

namespace ferry::pg {
class Pool;
}

namespace ferry::c2d {

struct StoredMessage {
  std::string device_id;
  std::int64_t sequence_number = 0;
  std::string message_id;
  std::optional<std::string> correlation_id;
  std::optional<std::string> user_id;
  Ack ack = Ack::kNone;
  std::optional<std::string> content_type;
  std::optional<std::string> content_encoding;
  std::map<std::string, std::string> properties;
  std::string body;
  std::string device_generation_id;
  TimePoint enqueued_at;
  std::optional<TimePoint> first_delivered_at;
  Message lifecycle;  // state, count, lock, expiry, outcome
};

struct SendResult {
  StoredMessage message;
  bool duplicate = false;
};

struct ReceiveResult {
  std::optional<StoredMessage> message;
  // Nothing deliverable: when the earliest lock of the device lapses, if any
  // (a receiver waits at most until then before looking again).
  std::optional<TimePoint> next_lapse;
};

// The status of each feedback record a state change wrote, in the order
// written; reported only once its transaction committed.
using FeedbackWritten = std::vector<Outcome>;

struct SettleResult {
  StoredMessage message;
  bool repeated = false;  // the same settlement again: nothing changed
  FeedbackWritten feedback;
};

struct PurgeResult {
  std::int64_t purged = 0;
  FeedbackWritten feedback;
};

struct ExpireResult {
  std::int64_t expired = 0;
  FeedbackWritten feedback;
};

enum class Settlement { kComplete, kAbandon, kReject };

// Where feedback records go (services/c2d/feedback.h), and how long they
// live.
struct FeedbackOptions {
  std::chrono::seconds ttl{3600};
};

struct QueueStats {
  std::int64_t pending = 0;           // Enqueued + Invisible, all devices
  std::int64_t devices_at_limit = 0;  // devices whose pending count is at the depth limit
};

// Tables c2d_queues and c2d_messages (migration 0006). Send (the SQL
// function of migration 0008), Receive and the common Complete are single
// statements; every other state change reads the row FOR UPDATE, applies
// core/c2d/lifecycle.h on the given time and writes the row back in the
// same transaction. tests/pg/c2d_parity_pgtest.cc holds the two forms to
// one table of scenarios; a send or an abandon that
// makes a device's queue deliverable NOTIFYs `ferry_c2d` with the device id.
// Throws ferry::Error (kDeviceNotFound, kDeviceMaximumQueueDepthExceeded,
// kDeviceMessageLockLost, kMessageNotFound, kServiceUnavailable).
// Thread-safe.
class Store final {
 public:
  Store(pg::Pool& pool, Limits limits, int max_depth, FeedbackOptions feedback = {})
      : pool_(pool), limits_(limits), max_depth_(max_depth), feedback_(feedback) {}

  // In one READ COMMITTED transaction: lock the device row (an unknown or
  // disabled device is DeviceNotFound), look the message id up (a known one
  // answers the existing message as a duplicate, even with the queue full),
  // count the pending messages (unexpired Enqueued + Invisible) against the
  // depth, insert with the device's next sequence number.
  SendResult Send(const OutgoingMessage& message, TimePoint now);
  // Locks the lowest-sequence deliverable message of the device.
  ReceiveResult Receive(const std::string& device_id, TimePoint now);
  SettleResult Settle(const std::string& device_id, const std::string& lock_token, Settlement kind,
                      TimePoint now);
  // Purges the device's pending messages; returns how many.
  // Records `audit`, when given, with the count in the same transaction.
  PurgeResult Purge(const std::string& device_id, TimePoint now,
                    const audit::Entry* audit = nullptr);
  StoredMessage Get(const std::string& device_id, const std::optional<std::string>& message_id,
                    std::optional<std::int64_t> sequence_number);
  std::vector<StoredMessage> List(const std::string& device_id, bool include_finished,
                                  std::int64_t after_sequence, std::size_t limit);
  QueueStats Stats(TimePoint now);
  // The sweeper's actions, each bounded to `limit` rows in one transaction
  // (FOR UPDATE SKIP LOCKED, so two sweepers at once double nothing):
  // lapsed locks back to Enqueued (count unchanged; NOTIFYs the devices),
  // messages past expiry dead-lettered (Expired, with feedback), terminal
  // messages whose outcome is older than `retention` deleted. Each returns
  // the rows it changed (ExpireMessages also the feedback it wrote).
  std::int64_t ReleaseLapsedLocks(TimePoint now, int limit);
  ExpireResult ExpireMessages(TimePoint now, int limit);
  std::int64_t TrimFinished(TimePoint now, std::chrono::seconds retention, int limit);

  // How many of `lock_tokens` still hold a lock on one of the device's messages.
  std::int64_t CountLocked(const std::string& device_id,
                           const std::vector<std::string>& lock_tokens, TimePoint now);

  [[nodiscard]] const Limits& limits() const { return limits_; }
  [[nodiscard]] int max_depth() const { return max_depth_; }

 private:
  // Complete's common case in one statement; nullopt when it does not apply.
  std::optional<SettleResult> TryComplete(const std::string& device_id,
                                          const std::string& lock_token, TimePoint now);

  pg::Pool& pool_;
  const Limits limits_;
  const int max_depth_;
  const FeedbackOptions feedback_;
};

// A random lock token (32 hex digits).
[[nodiscard]] std::string NewLockToken();

}  // namespace ferry::c2d
