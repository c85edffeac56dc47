#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

// The C2D message lifecycle of IoT Hub (docs/c2d.md) as a pure state
// machine, on the time given: the executable specification of the rules.
// The store (services/c2d/c2d_store.cc) runs them: a send, a receive and the
// common complete as single SQL statements (one round trip each); abandon,
// reject, a repeated or refused settlement, purge, expiry and lock release
// by reading the row FOR UPDATE and applying these functions. One table of
// scenarios (tests/pg/c2d_parity_pgtest.cc) runs against both and fails on
// any difference, so a change to one side without the other cannot land.

namespace ferry::c2d {

// Stored states. Purged is terminal and kept (like Completed) so that the
// message id stays known and its outcome can be reported.
enum class State { kEnqueued, kInvisible, kCompleted, kDeadLettered, kPurged };

// What ended a message: the feedback status codes of §2.
enum class Outcome { kNone, kSuccess, kExpired, kDeliveryCountExceeded, kRejected, kPurged };

// The sender's ack request (`iothub-ack`).
enum class Ack { kNone, kPositive, kNegative, kFull };

struct Message {
  State state = State::kEnqueued;
  int delivery_count = 0;
  std::string lock_token;               // empty: none
  std::optional<TimePoint> lock_until;  // set while (or after) locked
  TimePoint expires_at;
  Outcome outcome = Outcome::kNone;
  std::optional<TimePoint> outcome_at;
};

struct Limits {
  std::chrono::seconds lock{60};  // 5 to 300 s
  int max_delivery_count = 10;    // 1 to 100
};

enum class Verdict {
  kDone,         // the transition happened
  kAlreadyDone,  // a repeat of the settlement that ended it, with the same token: OK, no change
  kLockLost,     // no valid lock with this token (DeviceMessageLockLost)
  kNotAllowed,   // not in a state this event applies to
};

struct Result {
  Verdict verdict = Verdict::kNotAllowed;
  // The message became deliverable again (an abandon below the maximum):
  // waiting receivers should be woken.
  bool deliverable_again = false;
};

// Enqueued or Invisible: counts toward the queue depth.
[[nodiscard]] bool Pending(const Message& m);
// What a receive may lock now: Enqueued, or Invisible with a lapsed lock,
// and never one past its expiry.
[[nodiscard]] bool Deliverable(const Message& m, TimePoint now);
[[nodiscard]] bool Terminal(State s);

// Receive: Enqueued (or lapsed Invisible) → Invisible with `token` until
// now + lock. The delivery count is unchanged.
Result Lock(Message& m, TimePoint now, const Limits& limits, std::string token);
// Invisible with this token and the lock not yet lapsed → Completed (Success).
Result Complete(Message& m, std::string_view token, TimePoint now);
// → Enqueued with the count + 1, or Dead lettered (DeliveryCountExceeded)
// when that reaches the maximum.
Result Abandon(Message& m, std::string_view token, TimePoint now, const Limits& limits);
// → Dead lettered (Rejected).
Result Reject(Message& m, std::string_view token, TimePoint now);
// Any non-terminal state past its expiry → Dead lettered (Expired).
Result Expire(Message& m, TimePoint now);
// Any non-terminal state → Purged.
Result Purge(Message& m, TimePoint now);
// A lapsed lock back to Enqueued (count unchanged); the sweeper's job, also
// implied by Deliverable.
Result ReleaseLapsedLock(Message& m, TimePoint now);

// Whether an outcome produces a feedback record under `ack` (§2): positive →
// Success; negative → the failures; full → all; none → nothing.
[[nodiscard]] bool WantsFeedback(Ack ack, Outcome outcome);

[[nodiscard]] std::string_view StateName(State s);      // "Enqueued", ...
[[nodiscard]] std::string_view OutcomeName(Outcome o);  // "Success", ... ("" for none)
[[nodiscard]] std::string_view AckName(Ack a);          // "none", "positive", ...
[[nodiscard]] std::optional<State> StateFromName(std::string_view name);
[[nodiscard]] std::optional<Outcome> OutcomeFromName(std::string_view name);
[[nodiscard]] std::optional<Ack> AckFromName(std::string_view name);

}  // namespace ferry::c2d
