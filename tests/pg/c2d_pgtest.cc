// C2D queues against PostgreSQL, through the gRPC API (ApiHarness, fake
// clock): depth and idempotency under concurrency, competing receivers, the
// lifecycle's refusals, purge, expiry, device deletion, wake-ups, Subscribe.
#include <atomic>
#include <set>
#include <thread>

#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "ferry/v1/c2d.grpc.pb.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "tests/support/api_harness.h"
#include "tests/support/pg.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using google::protobuf::util::TimeUtil;

class C2dTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    api_ = std::make_unique<testing::ApiHarness>(db_.url());
    c2d_ = v1::CloudToDevice::NewStub(api_->Channel());
    device_ = v1::DeviceMessaging::NewStub(api_->Channel());
    registry_ = v1::Registry::NewStub(api_->Channel());
    CreateDevice("dev-1");
  }

  void CreateDevice(const std::string& id, bool disabled = false) {
    v1::CreateDeviceRequest req;
    req.mutable_device()->set_device_id(id);
    if (disabled) req.mutable_device()->set_status(v1::DEVICE_STATUS_DISABLED);
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    v1::Device out;
    ASSERT_TRUE(registry_->CreateDevice(&ctx, req, &out).ok());
  }

  grpc::Status Send(const std::string& device, const std::string& message_id,
                    v1::SendC2dResponse* out = nullptr, std::string* reason = nullptr,
                    const std::function<void(v1::C2dMessage&)>& edit = {}) {
    v1::SendC2dRequest req;
    req.set_device_id(device);
    req.mutable_message()->set_message_id(message_id);
    req.mutable_message()->set_body("hello " + message_id);
    req.mutable_message()->set_ack(v1::ACK_MODE_FULL);
    if (edit) edit(*req.mutable_message());
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    v1::SendC2dResponse resp;
    const grpc::Status s = c2d_->Send(&ctx, req, &resp);
    if (out != nullptr) *out = resp;
    if (reason != nullptr) *reason = testing::ErrorReason(ctx);
    return s;
  }

  // Receive with a wait; nullopt when no message came.
  std::optional<v1::ReceivedMessage> Receive(const std::string& device,
                                             std::chrono::milliseconds wait = 0ms,
                                             grpc::Status* status = nullptr) {
    v1::ReceiveRequest req;
    req.set_device_id(device);
    *req.mutable_wait() = TimeUtil::MillisecondsToDuration(wait.count());
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + wait + 20s);
    v1::ReceiveResponse resp;
    const grpc::Status s = device_->Receive(&ctx, req, &resp);
    if (status != nullptr) *status = s;
    if (!s.ok() || !resp.has_message()) return std::nullopt;
    return resp.message();
  }

  grpc::Status Settle(const std::string& method, const std::string& device,
                      const std::string& token, std::string* reason = nullptr) {
    v1::SettleRequest req;
    req.set_device_id(device);
    req.set_lock_token(token);
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    v1::SettleResponse resp;
    grpc::Status s;
    if (method == "complete") s = device_->Complete(&ctx, req, &resp);
    if (method == "abandon") s = device_->Abandon(&ctx, req, &resp);
    if (method == "reject") s = device_->Reject(&ctx, req, &resp);
    if (reason != nullptr) *reason = testing::ErrorReason(ctx);
    return s;
  }

  v1::C2dMessageState Get(const std::string& device, const std::string& message_id) {
    v1::GetC2dMessageRequest req;
    req.set_device_id(device);
    req.set_message_id(message_id);
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    v1::C2dMessageState out;
    EXPECT_TRUE(c2d_->GetMessage(&ctx, req, &out).ok());
    return out;
  }

  long Count(const std::string& sql) { return db_.Count(sql); }

  testing::TestDatabase db_;
  std::unique_ptr<testing::ApiHarness> api_;
  std::unique_ptr<v1::CloudToDevice::Stub> c2d_;
  std::unique_ptr<v1::DeviceMessaging::Stub> device_;
  std::unique_ptr<v1::Registry::Stub> registry_;
};

TEST_F(C2dTest, HundredConcurrentSendsAtDepthFiftyAcceptExactlyFifty) {
  std::atomic<int> ok{0}, full{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&, i] {
      std::string reason;
      const grpc::Status s = Send("dev-1", "m-" + std::to_string(i), nullptr, &reason);
      if (s.ok()) {
        ++ok;
      } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                 reason == "DeviceMaximumQueueDepthExceeded") {
        ++full;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 50);
  EXPECT_EQ(full, 50);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_messages"), 50);
  EXPECT_EQ(Count("SELECT count(DISTINCT sequence_number) FROM c2d_messages"), 50);
  EXPECT_EQ(Count("SELECT max(sequence_number) FROM c2d_messages"), 50);
  // A known message id still answers (a duplicate), even with the queue full.
  v1::SendC2dResponse again;
  std::string first_id;
  {
    pqxx::connection conn(db_.url());
    pqxx::nontransaction tx(conn);
    first_id = tx.exec("SELECT message_id FROM c2d_messages WHERE sequence_number = 1")[0][0]
                   .as<std::string>();
  }
  ASSERT_TRUE(Send("dev-1", first_id, &again).ok());
  EXPECT_TRUE(again.duplicate());
  EXPECT_EQ(again.sequence_number(), 1);
}

TEST_F(C2dTest, TenConcurrentSendsOfOneMessageIdMakeOneMessageAndEqualAnswers) {
  std::vector<v1::SendC2dResponse> answers(10);
  std::vector<grpc::Status> statuses(10);
  std::vector<std::thread> threads;
  for (int i = 0; i < 10; ++i) {
    threads.emplace_back([&, i] { statuses[i] = Send("dev-1", "same-id", &answers[i]); });
  }
  for (auto& t : threads) t.join();
  int duplicates = 0;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_EQ(answers[i].sequence_number(), answers[0].sequence_number());
    EXPECT_EQ(answers[i].message_id(), "same-id");
    EXPECT_EQ(TimeUtil::ToString(answers[i].enqueued_time()),
              TimeUtil::ToString(answers[0].enqueued_time()));
    duplicates += answers[i].duplicate() ? 1 : 0;
  }
  EXPECT_EQ(duplicates, 9);
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_messages"), 1);
}

TEST_F(C2dTest, EightConcurrentReceiversNeverLockOneMessageTwice) {
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(Send("dev-1", "m-" + std::to_string(i)).ok());
  std::mutex mutex;
  std::vector<std::int64_t> got;
  std::vector<std::thread> threads;
  for (int r = 0; r < 8; ++r) {
    threads.emplace_back([&] {
      while (auto m = Receive("dev-1")) {
        std::lock_guard lock(mutex);
        got.push_back(m->sequence_number());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(got.size(), 40u);
  EXPECT_EQ(std::set<std::int64_t>(got.begin(), got.end()).size(), 40u);
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_messages WHERE state = 'Invisible'"), 40);
}

TEST_F(C2dTest, ALapsedLockRedeliversAndTheOldTokenIsLockLost) {
  ASSERT_TRUE(Send("dev-1", "m-1").ok());
  const auto first = Receive("dev-1");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->delivery_count(), 0);
  EXPECT_EQ(first->to(), "/devices/dev-1/messages/devicebound");
  EXPECT_FALSE(Receive("dev-1").has_value());  // locked
  api_->clock().Advance(61s);
  const auto second = Receive("dev-1");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->sequence_number(), first->sequence_number());
  EXPECT_EQ(second->delivery_count(), 0);  // a lapse does not count
  EXPECT_NE(second->lock_token(), first->lock_token());
  std::string reason;
  EXPECT_EQ(Settle("complete", "dev-1", first->lock_token(), &reason).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(reason, "DeviceMessageLockLost");
  api_->clock().Advance(59s);
  ASSERT_TRUE(Settle("complete", "dev-1", second->lock_token()).ok());
  EXPECT_TRUE(Settle("complete", "dev-1", second->lock_token()).ok());  // a repeat is OK
  const auto state = Get("dev-1", "m-1");
  EXPECT_EQ(state.state(), v1::C2D_STATE_COMPLETED);
  EXPECT_EQ(state.outcome(), "Success");
  // A late complete (after the lock lapsed) is refused.
  ASSERT_TRUE(Send("dev-1", "m-2").ok());
  const auto late = Receive("dev-1");
  ASSERT_TRUE(late.has_value());
  api_->clock().Advance(60s);
  EXPECT_EQ(Settle("complete", "dev-1", late->lock_token(), &reason).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(C2dTest, AbandonToTheLimitDeadLettersAndRejectDeadLetters) {
  ASSERT_TRUE(Send("dev-1", "m-1").ok());
  for (int i = 0; i < 10; ++i) {
    const auto m = Receive("dev-1");
    ASSERT_TRUE(m.has_value()) << i;
    EXPECT_EQ(m->delivery_count(), i);
    ASSERT_TRUE(Settle("abandon", "dev-1", m->lock_token()).ok());
  }
  EXPECT_FALSE(Receive("dev-1").has_value());
  auto state = Get("dev-1", "m-1");
  EXPECT_EQ(state.state(), v1::C2D_STATE_DEAD_LETTERED);
  EXPECT_EQ(state.outcome(), "DeliveryCountExceeded");
  EXPECT_EQ(state.delivery_count(), 10);

  ASSERT_TRUE(Send("dev-1", "m-2").ok());
  const auto m = Receive("dev-1");
  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(Settle("reject", "dev-1", m->lock_token()).ok());
  state = Get("dev-1", "m-2");
  EXPECT_EQ(state.state(), v1::C2D_STATE_DEAD_LETTERED);
  EXPECT_EQ(state.outcome(), "Rejected");
}

TEST_F(C2dTest, PurgeRemovesPendingMessagesAndExpiredOnesAreNeverDelivered) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Send("dev-1", "m-" + std::to_string(i)).ok());
  ASSERT_TRUE(Receive("dev-1").has_value());
  v1::PurgeQueueRequest req;
  req.set_device_id("dev-1");
  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::PurgeQueueResponse purged;
  ASSERT_TRUE(c2d_->PurgeQueue(&ctx, req, &purged).ok());
  EXPECT_EQ(purged.total_messages_purged(), 3);
  EXPECT_EQ(Get("dev-1", "m-0").state(), v1::C2D_STATE_PURGED);
  EXPECT_EQ(Get("dev-1", "m-0").outcome(), "Purged");
  EXPECT_FALSE(Receive("dev-1").has_value());

  ASSERT_TRUE(Send("dev-1", "short", nullptr, nullptr, [](v1::C2dMessage& m) {
                *m.mutable_ttl() = TimeUtil::SecondsToDuration(60);
              }).ok());
  api_->clock().Advance(61s);
  EXPECT_FALSE(Receive("dev-1").has_value());
  EXPECT_EQ(Get("dev-1", "short").state(),
            v1::C2D_STATE_ENQUEUED);  // the sweeper (issue 7) dead-letters it
}

TEST_F(C2dTest, DeletingADeviceRemovesItsQueueAndItsLocksAnswerDeviceNotFound) {
  ASSERT_TRUE(Send("dev-1", "m-1").ok());
  const auto m = Receive("dev-1");
  ASSERT_TRUE(m.has_value());
  v1::DeleteDeviceRequest del;
  del.set_device_id("dev-1");
  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::DeleteDeviceResponse deleted;
  ASSERT_TRUE(registry_->DeleteDevice(&ctx, del, &deleted).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_messages"), 0);
  std::string reason;
  EXPECT_EQ(Settle("complete", "dev-1", m->lock_token(), &reason).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reason, "DeviceNotFound");
  EXPECT_EQ(Send("dev-1", "m-2", nullptr, &reason).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reason, "DeviceNotFound");
}

TEST_F(C2dTest, BadSendsAreRefusedAsIotHubRefusesThem) {
  CreateDevice("off", true);
  std::string reason;
  EXPECT_EQ(Send("nobody", "m", nullptr, &reason).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Send("off", "m", nullptr, &reason).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reason, "DeviceNotFound");
  EXPECT_EQ(Send("dev-1", "big", nullptr, &reason,
                 [](v1::C2dMessage& m) { m.set_body(std::string(64 * 1024, 'x')); })
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(reason, "MessageTooLarge");
  EXPECT_EQ(Send("dev-1", "p", nullptr, &reason,
                 [](v1::C2dMessage& m) { (*m.mutable_properties())["bad name"] = "x"; })
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(reason, "ArgumentInvalid");
  EXPECT_EQ(Send("dev-1", "t", nullptr, &reason,
                 [](v1::C2dMessage& m) { *m.mutable_ttl() = TimeUtil::SecondsToDuration(10); })
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Send("dev-1", "bad id with spaces", nullptr, &reason).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // No message id: one is generated.
  v1::SendC2dResponse generated;
  ASSERT_TRUE(Send("dev-1", "", &generated).ok());
  EXPECT_FALSE(generated.message_id().empty());
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_messages"), 1);
}

// Nothing is cut short or wraps around on its way in: a NUL in any text
// field, and times or durations past their type's range, are refused whole.
TEST_F(C2dTest, NulsAndOutOfRangeTimesAreRefusedNotCutOrWrapped) {
  const std::string nul("text/plain\0evil", 16);
  for (const auto& [what, edit] :
       std::vector<std::pair<std::string, std::function<void(v1::C2dMessage&)>>>{
           {"content_type", [&](v1::C2dMessage& m) { m.set_content_type(nul); }},
           {"content_encoding", [&](v1::C2dMessage& m) { m.set_content_encoding(nul); }},
           {"property value", [&](v1::C2dMessage& m) { (*m.mutable_properties())["k"] = nul; }},
           // 2^58 s wraps to 3600 s in protobuf's own microsecond conversion.
           {"ttl",
            [](v1::C2dMessage& m) {
              m.mutable_ttl()->set_seconds((std::int64_t{1} << 58) + 3600);
            }},
           {"expiry_time",
            [&](v1::C2dMessage& m) {
              m.mutable_expiry_time()->set_seconds(
                  (std::int64_t{1} << 58) + ToUnixMicros(api_->clock().Now()) / 1000000 + 3600);
            }},
       }) {
    std::string reason;
    EXPECT_EQ(
        Send("dev-1", "m-" + std::to_string(what.size()), nullptr, &reason, edit).error_code(),
        grpc::StatusCode::INVALID_ARGUMENT)
        << what;
    EXPECT_EQ(reason, "ArgumentInvalid") << what;
  }
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_messages"), 0);
  // A Receive wait of 2^58 + 2 s does not wait 2 s: it is refused.
  v1::ReceiveRequest req;
  req.set_device_id("dev-1");
  req.mutable_wait()->set_seconds((std::int64_t{1} << 58) + 2);
  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::ReceiveResponse resp;
  const grpc::Status s = device_->Receive(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("wait"), std::string::npos) << s.error_message();
  // A NUL in a lock token: refused, not settled as the token before it.
  EXPECT_EQ(Settle("complete", "dev-1", std::string("tok\0x", 5)).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(C2dTest, AWaitingReceiveWakesWhenAMessageIsSent) {
  std::optional<v1::ReceivedMessage> got;
  std::chrono::steady_clock::time_point sent_at, got_at;
  std::thread receiver([&] {
    got = Receive("dev-1", 15s);
    got_at = std::chrono::steady_clock::now();
  });
  ASSERT_TRUE(testing::WaitFor([&] { return api_->wake_hub().watching() == 1; }, 10s));
  sent_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(Send("dev-1", "wake").ok());
  receiver.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->message_id(), "wake");
  EXPECT_LT(got_at - sent_at, 5s);  // generous: the figure is in the benchmark
  // A wait that ends with nothing answers OK without a message.
  grpc::Status s;
  EXPECT_FALSE(Receive("dev-1", 200ms, &s).has_value());
  EXPECT_TRUE(s.ok());
}

TEST_F(C2dTest, ACancelledReceiveStopsWaitingAtOnce) {
  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::ReceiveRequest req;
  req.set_device_id("dev-1");
  *req.mutable_wait() = TimeUtil::SecondsToDuration(100);
  v1::ReceiveResponse resp;
  grpc::Status status;
  std::thread caller([&] { status = device_->Receive(&ctx, req, &resp); });
  ASSERT_TRUE(testing::WaitFor([&] { return api_->wake_hub().watching() == 1; }, 10s));
  ctx.TryCancel();
  caller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(testing::WaitFor([&] { return api_->wake_hub().watching() == 0; }, 10s));
  // Nothing was locked for the cancelled call.
  ASSERT_TRUE(Send("dev-1", "after").ok());
  EXPECT_TRUE(Receive("dev-1").has_value());
}

TEST_F(C2dTest, SubscribeStreamsMessagesHoldingAtMostMaxInFlightLocked) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Send("dev-1", "m-" + std::to_string(i)).ok());
  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  ctx.set_deadline(std::chrono::system_clock::now() + 60s);
  v1::SubscribeRequest req;
  req.set_device_id("dev-1");
  req.set_max_in_flight(2);
  auto stream = device_->Subscribe(&ctx, req);
  v1::ReceivedMessage a, b, c;
  ASSERT_TRUE(stream->Read(&a));
  ASSERT_TRUE(stream->Read(&b));
  EXPECT_EQ(a.message_id(), "m-0");
  EXPECT_EQ(b.message_id(), "m-1");
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_messages WHERE state = 'Invisible'"),
            2);  // at the bound
  ASSERT_TRUE(Settle("complete", "dev-1", a.lock_token()).ok());
  ASSERT_TRUE(stream->Read(&c));
  EXPECT_EQ(c.message_id(), "m-2");
  // A message sent later is pushed as it arrives.
  ASSERT_TRUE(Settle("complete", "dev-1", b.lock_token()).ok());
  ASSERT_TRUE(Send("dev-1", "later").ok());
  v1::ReceivedMessage d;
  ASSERT_TRUE(stream->Read(&d));
  EXPECT_EQ(d.message_id(), "later");
  ctx.TryCancel();
  (void)stream->Finish();
}

TEST_F(C2dTest, CallsOverAClassRateAreThrottledWithIotHubsReason) {
  api_->runtime().SetThrottles({.c2d_sends = 5});
  int ok = 0, throttled = 0;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    std::string reason;
    const grpc::Status s = Send("dev-1", "t-" + std::to_string(i), nullptr, &reason);
    if (s.ok()) ++ok;
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && reason == "ThrottlingException")
      ++throttled;
  }
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_GE(ok, 5);
  // The burst, and what refilled while the calls ran (however slow the machine).
  EXPECT_LE(ok, 5 + static_cast<int>(took * 5) + 1) << took << " s";
  EXPECT_EQ(ok + throttled, 20);
  // Other classes are not affected.
  grpc::Status s;
  (void)Receive("dev-1", 0ms, &s);
  EXPECT_TRUE(s.ok());
}

}  // namespace
}  // namespace ferry
