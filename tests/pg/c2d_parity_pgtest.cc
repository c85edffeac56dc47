// One truth for the C2D lifecycle: the rules run in the store (SQL for the
// send, receive and the common complete; the pure model of
// core/c2d/lifecycle.h inside the store's transaction for the rest), and the
// pure model is their executable specification. Every scenario below runs
// against both, step by step, on the same times; any difference in what a
// step answers or in the message it leaves (state, delivery count, outcome,
// lock) fails, naming the scenario and the step. Each step's result also
// reports the feedback it wrote: the record the model's new outcome asks
// for (the messages ask for full acks), and what c2d_feedback holds.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "core/c2d/lifecycle.h"
#include "core/error.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "services/c2d/c2d_store.h"
#include "tests/support/api_harness.h"
#include "tests/support/pg.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using c2d::Verdict;

enum class Op { kReceive, kComplete, kAbandon, kReject, kAdvance, kRelease, kExpire, kPurge };
// Which lock token a settlement presents.
enum class Token { kCurrent, kPrevious, kBogus };

struct Step {
  Op op;
  Token token = Token::kCurrent;
  std::chrono::seconds by{0};  // kAdvance
};

Step Receive() {
  return {Op::kReceive};
}
Step Complete(Token t = Token::kCurrent) {
  return {Op::kComplete, t};
}
Step Abandon(Token t = Token::kCurrent) {
  return {Op::kAbandon, t};
}
Step Reject(Token t = Token::kCurrent) {
  return {Op::kReject, t};
}
Step Advance(std::chrono::seconds by) {
  return {Op::kAdvance, Token::kCurrent, by};
}
Step Release() {
  return {Op::kRelease};
}
Step Expire() {
  return {Op::kExpire};
}
Step Purge() {
  return {Op::kPurge};
}

struct Scenario {
  const char* name;
  std::chrono::seconds ttl;
  std::vector<Step> steps;
};

constexpr c2d::Limits kLimits{60s, 3};

// Every row of the lifecycle (docs/c2d.md): each settlement from each state,
// repeats, stale and unknown tokens, the lock's lapse on both sides of its
// instant, the maximum delivery count, expiry (locked or not, by the sweeper
// or at receive), purge from each state.
const std::vector<Scenario>& Scenarios() {
  static const std::vector<Scenario> all = {
      {"receive and complete", 3600s, {Receive(), Complete()}},
      {"complete twice is a repeat", 3600s, {Receive(), Complete(), Complete()}},
      {"complete a second before the lock lapses", 3600s, {Receive(), Advance(59s), Complete()}},
      {"complete at the instant the lock lapses", 3600s, {Receive(), Advance(60s), Complete()}},
      {"complete after the lock lapsed", 3600s, {Receive(), Advance(61s), Complete()}},
      {"complete with an unknown token", 3600s, {Receive(), Complete(Token::kBogus)}},
      {"complete without a receive", 3600s, {Complete(Token::kBogus)}},
      {"abandon, receive again, complete", 3600s, {Receive(), Abandon(), Receive(), Complete()}},
      {"abandon twice with one token", 3600s, {Receive(), Abandon(), Abandon()}},
      {"abandon to the maximum dead-letters",
       3600s,
       {Receive(), Abandon(), Receive(), Abandon(), Receive(), Abandon(), Receive()}},
      {"abandon after the lock lapsed", 3600s, {Receive(), Advance(61s), Abandon()}},
      {"reject", 3600s, {Receive(), Reject()}},
      {"reject twice", 3600s, {Receive(), Reject(), Reject()}},
      {"complete after a reject", 3600s, {Receive(), Reject(), Complete()}},
      {"reject after a complete", 3600s, {Receive(), Complete(), Reject()}},
      {"reject after the lock lapsed", 3600s, {Receive(), Advance(61s), Reject()}},
      {"a lapsed lock redelivers; the old token is lost",
       3600s,
       {Receive(), Advance(61s), Receive(), Complete(Token::kPrevious), Complete()}},
      {"a receive at the instant the lock lapses", 3600s, {Receive(), Advance(60s), Receive()}},
      {"a receive while locked finds nothing", 3600s, {Receive(), Advance(30s), Receive()}},
      {"the sweeper releases a lapsed lock",
       3600s,
       {Receive(), Advance(61s), Release(), Receive(), Complete()}},
      {"the sweeper leaves a live lock", 3600s, {Receive(), Advance(30s), Release(), Complete()}},
      {"expired before any receive", 90s, {Advance(90s), Receive(), Expire(), Receive()}},
      {"a receive a second before expiry", 90s, {Advance(89s), Receive(), Complete()}},
      {"expiry while locked", 90s, {Advance(50s), Receive(), Advance(45s), Complete()}},
      {"the sweeper expires a locked message",
       90s,
       {Advance(50s), Receive(), Advance(45s), Expire(), Complete()}},
      {"the sweeper expires nothing early", 90s, {Advance(30s), Expire(), Receive()}},
      {"purge a queued message", 3600s, {Purge(), Receive()}},
      {"purge a locked message", 3600s, {Receive(), Purge(), Complete()}},
      {"purge a completed message", 3600s, {Receive(), Complete(), Purge()}},
      {"purge twice", 3600s, {Purge(), Purge()}},
      {"expire after a purge", 90s, {Purge(), Advance(100s), Expire()}},
      {"abandon after a purge", 3600s, {Receive(), Purge(), Abandon()}},
  };
  return all;
}

// What a settlement answered, the same words for both sides.
std::string Answer(Verdict v) {
  switch (v) {
    case Verdict::kDone:
      return "done";
    case Verdict::kAlreadyDone:
      return "repeat";
    case Verdict::kLockLost:
    case Verdict::kNotAllowed:
      return "lock lost";  // the API answers both as DeviceMessageLockLost
  }
  return "?";
}

std::string Describe(const c2d::FeedbackWritten& feedback) {
  std::string s = "[";
  for (const c2d::Outcome o : feedback) s += " " + std::string(c2d::OutcomeName(o));
  return s + " ]";
}

std::string Describe(const c2d::Message& m) {
  std::string s = std::string(c2d::StateName(m.state)) + " count " +
                  std::to_string(m.delivery_count) + " outcome '" +
                  std::string(c2d::OutcomeName(m.outcome)) + "'";
  if (m.state == c2d::State::kInvisible) {
    s += " locked by " + m.lock_token + " until " +
         std::to_string(m.lock_until ? ToUnixMicros(*m.lock_until) : -1);
  }
  return s;
}

class C2dParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    api_ = std::make_unique<testing::ApiHarness>(db_.url());
    store_ = std::make_unique<c2d::Store>(api_->pool(), kLimits, 50);
  }

  void CreateDevice(const std::string& id) {
    v1::CreateDeviceRequest req;
    req.mutable_device()->set_device_id(id);
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    v1::Device out;
    ASSERT_TRUE(v1::Registry::NewStub(api_->Channel())->CreateDevice(&ctx, req, &out).ok());
  }

  testing::TestDatabase db_;
  std::unique_ptr<testing::ApiHarness> api_;
  std::unique_ptr<c2d::Store> store_;
};

TEST_F(C2dParityTest, TheStoreAndThePureModelAgreeOnEveryScenario) {
  const TimePoint t0 = FromUnixMicros(1'800'000'000'000'000);
  int n = 0;
  for (const Scenario& sc : Scenarios()) {
    SCOPED_TRACE(sc.name);
    // One device per scenario, and the sweeper's passes (which span every
    // device) see no message of an earlier scenario.
    const std::string device = "parity-" + std::to_string(n++);
    CreateDevice(device);
    {
      pqxx::connection c(db_.url());
      pqxx::work w(c);
      w.exec("DELETE FROM c2d_messages");
      w.commit();
    }
    TimePoint now = t0;
    c2d::OutgoingMessage out;
    out.device_id = device;
    out.message_id = "m";
    out.ack = c2d::Ack::kFull;
    out.expires_at = now + sc.ttl;
    out.body = "x";
    store_->Send(out, now);
    c2d::Message model;
    model.expires_at = out.expires_at;
    std::vector<std::string> tokens;
    std::size_t feedback_reported = 0;

    for (std::size_t i = 0; i < sc.steps.size(); ++i) {
      const Step& step = sc.steps[i];
      SCOPED_TRACE("step " + std::to_string(i + 1));
      std::string token = "bogus-token";
      if (step.token == Token::kCurrent && !tokens.empty()) token = tokens.back();
      if (step.token == Token::kPrevious && tokens.size() >= 2) token = tokens[tokens.size() - 2];
      std::string store_says, model_says;
      c2d::FeedbackWritten store_wrote;
      const c2d::Outcome model_before = model.outcome;
      switch (step.op) {
        case Op::kAdvance:
          now += step.by;
          continue;
        case Op::kReceive: {
          const c2d::ReceiveResult r = store_->Receive(device, now);
          store_says = r.message ? "locked" : "nothing";
          model_says = c2d::Deliverable(model, now) ? "locked" : "nothing";
          if (r.message) {
            tokens.push_back(r.message->lifecycle.lock_token);
            (void)c2d::Lock(model, now, kLimits, tokens.back());
          }
          break;
        }
        case Op::kComplete:
        case Op::kAbandon:
        case Op::kReject: {
          const c2d::Settlement kind = step.op == Op::kComplete  ? c2d::Settlement::kComplete
                                       : step.op == Op::kAbandon ? c2d::Settlement::kAbandon
                                                                 : c2d::Settlement::kReject;
          try {
            c2d::SettleResult r = store_->Settle(device, token, kind, now);
            store_says = r.repeated ? "repeat" : "done";
            store_wrote = std::move(r.feedback);
          } catch (const Error& e) {
            store_says = e.reason() == Reason::kDeviceMessageLockLost
                             ? "lock lost"
                             : std::string("error ") + std::string(ReasonName(e.reason()));
          }
          const c2d::Result m = step.op == Op::kComplete  ? c2d::Complete(model, token, now)
                                : step.op == Op::kAbandon ? c2d::Abandon(model, token, now, kLimits)
                                                          : c2d::Reject(model, token, now);
          model_says = Answer(m.verdict);
          break;
        }
        case Op::kRelease:
          store_says = std::to_string(store_->ReleaseLapsedLocks(now, 100)) + " released";
          model_says =
              std::string(c2d::ReleaseLapsedLock(model, now).verdict == Verdict::kDone ? "1"
                                                                                       : "0") +
              " released";
          break;
        case Op::kExpire: {
          c2d::ExpireResult r = store_->ExpireMessages(now, 100);
          store_says = std::to_string(r.expired) + " expired";
          store_wrote = std::move(r.feedback);
          model_says = std::string(c2d::Expire(model, now).verdict == Verdict::kDone ? "1" : "0") +
                       " expired";
          break;
        }
        case Op::kPurge: {
          c2d::PurgeResult r = store_->Purge(device, now);
          store_says = std::to_string(r.purged) + " purged";
          store_wrote = std::move(r.feedback);
          model_says =
              std::string(c2d::Purge(model, now).verdict == Verdict::kDone ? "1" : "0") + " purged";
          break;
        }
      }
      EXPECT_EQ(store_says, model_says) << "answers differ";
      c2d::FeedbackWritten model_wrote;
      if (model_before == c2d::Outcome::kNone && c2d::WantsFeedback(out.ack, model.outcome))
        model_wrote.push_back(model.outcome);
      EXPECT_EQ(Describe(store_wrote), Describe(model_wrote)) << "feedback reported differs";
      feedback_reported += store_wrote.size();
      EXPECT_EQ(db_.Count("SELECT count(*) FROM c2d_feedback WHERE device_id = '" + device + "'"),
                static_cast<long>(feedback_reported))
          << "feedback reported differs from feedback written";
      // The message each side holds now.
      c2d::Message stored = store_->Get(device, std::string("m"), std::nullopt).lifecycle;
      EXPECT_EQ(Describe(stored), Describe(model)) << "messages differ";
    }
  }
  EXPECT_EQ(n, static_cast<int>(Scenarios().size()));
}

}  // namespace
}  // namespace ferry
