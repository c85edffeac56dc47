#include "core/c2d/lifecycle.h"

namespace ferry::c2d {
namespace {

bool HoldsLock(const Message& m, std::string_view token, TimePoint now) {
  return m.state == State::kInvisible && !token.empty() && m.lock_token == token && m.lock_until &&
         now < *m.lock_until;
}

void Settle(Message& m, State state, Outcome outcome, TimePoint now) {
  m.state = state;
  m.outcome = outcome;
  m.outcome_at = now;
}

}  // namespace

bool Terminal(State s) {
  return s == State::kCompleted || s == State::kDeadLettered || s == State::kPurged;
}

bool Pending(const Message& m) {
  return m.state == State::kEnqueued || m.state == State::kInvisible;
}

bool Deliverable(const Message& m, TimePoint now) {
  if (now >= m.expires_at) return false;
  if (m.state == State::kEnqueued) return true;
  return m.state == State::kInvisible && (!m.lock_until || *m.lock_until <= now);
}

Result Lock(Message& m, TimePoint now, const Limits& limits, std::string token) {
  if (!Deliverable(m, now)) return {Verdict::kNotAllowed, false};
  m.state = State::kInvisible;
  m.lock_token = std::move(token);
  m.lock_until = now + limits.lock;
  return {Verdict::kDone, false};
}

Result Complete(Message& m, std::string_view token, TimePoint now) {
  if (m.state == State::kCompleted && !token.empty() && m.lock_token == token)
    return {Verdict::kAlreadyDone, false};
  if (!HoldsLock(m, token, now)) return {Verdict::kLockLost, false};
  Settle(m, State::kCompleted, Outcome::kSuccess, now);
  return {Verdict::kDone, false};
}

Result Abandon(Message& m, std::string_view token, TimePoint now, const Limits& limits) {
  if (!HoldsLock(m, token, now)) return {Verdict::kLockLost, false};
  ++m.delivery_count;
  m.lock_token.clear();
  m.lock_until.reset();
  if (m.delivery_count >= limits.max_delivery_count) {
    Settle(m, State::kDeadLettered, Outcome::kDeliveryCountExceeded, now);
    return {Verdict::kDone, false};
  }
  m.state = State::kEnqueued;
  return {Verdict::kDone, now < m.expires_at};
}

Result Reject(Message& m, std::string_view token, TimePoint now) {
  if (m.state == State::kDeadLettered && m.outcome == Outcome::kRejected && !token.empty() &&
      m.lock_token == token) {
    return {Verdict::kAlreadyDone, false};
  }
  if (!HoldsLock(m, token, now)) return {Verdict::kLockLost, false};
  Settle(m, State::kDeadLettered, Outcome::kRejected, now);
  return {Verdict::kDone, false};
}

Result Expire(Message& m, TimePoint now) {
  if (Terminal(m.state) || now < m.expires_at) return {Verdict::kNotAllowed, false};
  m.lock_token.clear();
  m.lock_until.reset();
  Settle(m, State::kDeadLettered, Outcome::kExpired, now);
  return {Verdict::kDone, false};
}

Result Purge(Message& m, TimePoint now) {
  if (Terminal(m.state)) return {Verdict::kNotAllowed, false};
  m.lock_token.clear();
  m.lock_until.reset();
  Settle(m, State::kPurged, Outcome::kPurged, now);
  return {Verdict::kDone, false};
}

Result ReleaseLapsedLock(Message& m, TimePoint now) {
  if (m.state != State::kInvisible || (m.lock_until && now < *m.lock_until))
    return {Verdict::kNotAllowed, false};
  m.state = State::kEnqueued;
  m.lock_token.clear();
  m.lock_until.reset();
  return {Verdict::kDone, now < m.expires_at};
}

bool WantsFeedback(Ack ack, Outcome outcome) {
  if (outcome == Outcome::kNone) return false;
  switch (ack) {
    case Ack::kNone:
      return false;
    case Ack::kPositive:
      return outcome == Outcome::kSuccess;
    case Ack::kNegative:
      return outcome != Outcome::kSuccess;
    case Ack::kFull:
      return true;
  }
  return false;
}

std::string_view StateName(State s) {
  switch (s) {
    case State::kEnqueued:
      return "Enqueued";
    case State::kInvisible:
      return "Invisible";
    case State::kCompleted:
      return "Completed";
    case State::kDeadLettered:
      return "DeadLettered";
    case State::kPurged:
      return "Purged";
  }
  return "Enqueued";
}

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kNone:
      return "";
    case Outcome::kSuccess:
      return "Success";
    case Outcome::kExpired:
      return "Expired";
    case Outcome::kDeliveryCountExceeded:
      return "DeliveryCountExceeded";
    case Outcome::kRejected:
      return "Rejected";
    case Outcome::kPurged:
      return "Purged";
  }
  return "";
}

std::string_view AckName(Ack a) {
  switch (a) {
    case Ack::kNone:
      return "none";
    case Ack::kPositive:
      return "positive";
    case Ack::kNegative:
      return "negative";
    case Ack::kFull:
      return "full";
  }
  return "none";
}

std::optional<State> StateFromName(std::string_view name) {
  for (const State s : {State::kEnqueued, State::kInvisible, State::kCompleted,
                        State::kDeadLettered, State::kPurged}) {
    if (StateName(s) == name) return s;
  }
  return std::nullopt;
}

std::optional<Outcome> OutcomeFromName(std::string_view name) {
  for (const Outcome o : {Outcome::kNone, Outcome::kSuccess, Outcome::kExpired,
                          Outcome::kDeliveryCountExceeded, Outcome::kRejected, Outcome::kPurged}) {
    if (OutcomeName(o) == name) return o;
  }
  return std::nullopt;
}

std::optional<Ack> AckFromName(std::string_view name) {
  for (const Ack a : {Ack::kNone, Ack::kPositive, Ack::kNegative, Ack::kFull}) {
    if (AckName(a) == name) return a;
  }
  return std::nullopt;
}

}  // namespace ferry::c2d
