// Delivery feedback and the sweeper against PostgreSQL (ApiHarness, fake
// clock): every ack × outcome, expiry exactly once with two sweepers,
// locked batches, Watch resume, device deletion.
#include <set>
#include <thread>

#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "core/c2d/lifecycle.h"
#include "ferry/v1/c2d.grpc.pb.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "ferry/v1/feedback.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "tests/support/api_harness.h"
#include "tests/support/pg.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using google::protobuf::util::TimeUtil;

// ferry_feedback_written_total{status} in `registry`.
double Written(prometheus::Registry& registry, c2d::Outcome status) {
  for (const auto& family : registry.Collect()) {
    if (family.name != "ferry_feedback_written_total") continue;
    for (const auto& m : family.metric) {
      for (const auto& l : m.label)
        if (l.name == "status" && l.value == c2d::OutcomeName(status)) return m.counter.value;
    }
  }
  return 0;
}

class FeedbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    api_ = std::make_unique<testing::ApiHarness>(db_.url());
    c2d_ = v1::CloudToDevice::NewStub(api_->Channel());
    device_ = v1::DeviceMessaging::NewStub(api_->Channel());
    feedback_ = v1::Feedback::NewStub(api_->Channel());
    registry_ = v1::Registry::NewStub(api_->Channel());
  }

  std::unique_ptr<grpc::ClientContext> Owner() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    api_->AsOwner(*ctx);
    ctx->set_deadline(std::chrono::system_clock::now() + 30s);
    return ctx;
  }

  void CreateDevice(const std::string& id) {
    v1::CreateDeviceRequest req;
    req.mutable_device()->set_device_id(id);
    v1::Device out;
    ASSERT_TRUE(registry_->CreateDevice(Owner().get(), req, &out).ok());
  }

  void Send(const std::string& device, const std::string& id, v1::AckMode ack,
            int ttl_seconds = 3600) {
    v1::SendC2dRequest req;
    req.set_device_id(device);
    req.mutable_message()->set_message_id(id);
    req.mutable_message()->set_ack(ack);
    *req.mutable_message()->mutable_ttl() = TimeUtil::SecondsToDuration(ttl_seconds);
    v1::SendC2dResponse out;
    const grpc::Status s = c2d_->Send(Owner().get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  std::string ReceiveToken(const std::string& device) {
    v1::ReceiveRequest req;
    req.set_device_id(device);
    v1::ReceiveResponse resp;
    EXPECT_TRUE(device_->Receive(Owner().get(), req, &resp).ok());
    EXPECT_TRUE(resp.has_message());
    return resp.message().lock_token();
  }

  grpc::Status Settle(const std::string& method, const std::string& device,
                      const std::string& token) {
    v1::SettleRequest req;
    req.set_device_id(device);
    req.set_lock_token(token);
    v1::SettleResponse resp;
    if (method == "complete") return device_->Complete(Owner().get(), req, &resp);
    if (method == "abandon") return device_->Abandon(Owner().get(), req, &resp);
    return device_->Reject(Owner().get(), req, &resp);
  }

  long Count(const std::string& sql) { return db_.Count(sql); }

  testing::TestDatabase db_;
  std::unique_ptr<testing::ApiHarness> api_;
  std::unique_ptr<v1::CloudToDevice::Stub> c2d_;
  std::unique_ptr<v1::DeviceMessaging::Stub> device_;
  std::unique_ptr<v1::Feedback::Stub> feedback_;
  std::unique_ptr<v1::Registry::Stub> registry_;
};

TEST_F(FeedbackTest, EveryAckAndOutcomeWritesExactlyTheRightRecords) {
  const std::vector<std::pair<v1::AckMode, c2d::Ack>> acks = {
      {v1::ACK_MODE_NONE, c2d::Ack::kNone},
      {v1::ACK_MODE_POSITIVE, c2d::Ack::kPositive},
      {v1::ACK_MODE_NEGATIVE, c2d::Ack::kNegative},
      {v1::ACK_MODE_FULL, c2d::Ack::kFull}};
  for (const auto& [ack, mode] : acks) {
    const std::string d = "dev-" + std::string(c2d::AckName(mode));
    CreateDevice(d);
    Send(d, "success", ack);
    ASSERT_TRUE(Settle("complete", d, ReceiveToken(d)).ok());
    Send(d, "rejected", ack);
    ASSERT_TRUE(Settle("reject", d, ReceiveToken(d)).ok());
    Send(d, "exceeded", ack);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(Settle("abandon", d, ReceiveToken(d)).ok());
    Send(d, "purged", ack);
    v1::PurgeQueueRequest purge;
    purge.set_device_id(d);
    v1::PurgeQueueResponse purged;
    ASSERT_TRUE(c2d_->PurgeQueue(Owner().get(), purge, &purged).ok());
    Send(d, "expired", ack, 60);
  }
  api_->clock().Advance(61s);
  (void)api_->sweeper().Pass();
  (void)api_->sweeper().Pass();  // a second pass writes nothing more
  const std::vector<std::pair<std::string, c2d::Outcome>> outcomes = {
      {"success", c2d::Outcome::kSuccess},
      {"rejected", c2d::Outcome::kRejected},
      {"exceeded", c2d::Outcome::kDeliveryCountExceeded},
      {"purged", c2d::Outcome::kPurged},
      {"expired", c2d::Outcome::kExpired}};
  for (const auto& [ack, mode] : acks) {
    const std::string d = "dev-" + std::string(c2d::AckName(mode));
    for (const auto& [id, outcome] : outcomes) {
      EXPECT_EQ(Count("SELECT count(*) FROM c2d_feedback WHERE device_id = '" + d +
                      "' AND original_message_id = '" + id + "' AND status = '" +
                      std::string(c2d::OutcomeName(outcome)) + "'"),
                c2d::WantsFeedback(mode, outcome) ? 1 : 0)
          << d << " " << id;
      EXPECT_EQ(Count("SELECT count(*) FROM c2d_feedback WHERE device_id = '" + d +
                      "' AND original_message_id = '" + id + "'"),
                c2d::WantsFeedback(mode, outcome) ? 1 : 0)
          << d << " " << id;
    }
  }
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_feedback"), 1 + 4 + 5);
  // What the settlements, the purges and the sweeper reported, counted by
  // the services: one per record written, by status.
  for (const auto& [id, outcome] : outcomes) {
    EXPECT_EQ(Written(api_->metrics(), outcome),
              static_cast<double>(Count("SELECT count(*) FROM c2d_feedback WHERE status = '" +
                                        std::string(c2d::OutcomeName(outcome)) + "'")))
        << id;
  }
  EXPECT_EQ(Written(api_->metrics(), c2d::Outcome::kSuccess), 2);
  EXPECT_EQ(Written(api_->metrics(), c2d::Outcome::kExpired), 2);
}

TEST_F(FeedbackTest, ExpiryProducesExpiredExactlyOnceWithTwoSweepersRunning) {
  for (int d = 0; d < 4; ++d) CreateDevice("dev-" + std::to_string(d));
  for (int i = 0; i < 200; ++i)
    Send("dev-" + std::to_string(i % 4), "m-" + std::to_string(i), v1::ACK_MODE_FULL, 60);
  // A locked message expires too.
  (void)ReceiveToken("dev-0");
  api_->clock().Advance(61s);
  prometheus::Registry r1, r2;
  c2d::FeedbackMetrics f1(r1), f2(r2);
  c2d::SweeperOptions options;
  options.batch = 16;
  c2d::Sweeper a(api_->pool(), api_->c2d_store(), api_->feedback_store(), api_->clock(), options,
                 r1, f1);
  c2d::Sweeper b(api_->pool(), api_->c2d_store(), api_->feedback_store(), api_->clock(), options,
                 r2, f2);
  c2d::PassResult ra, rb;
  std::thread ta([&] { ra = a.Pass(); });
  std::thread tb([&] { rb = b.Pass(); });
  ta.join();
  tb.join();
  EXPECT_EQ(ra.expired + rb.expired, 200);
  EXPECT_EQ(
      Count(
          "SELECT count(*) FROM c2d_messages WHERE state = 'DeadLettered' AND outcome = 'Expired'"),
      200);
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_feedback WHERE status = 'Expired'"), 200);
  EXPECT_EQ(Written(r1, c2d::Outcome::kExpired) + Written(r2, c2d::Outcome::kExpired), 200);
  EXPECT_EQ(Count("SELECT count(DISTINCT (device_id, original_message_id)) FROM c2d_feedback"),
            200);
}

TEST_F(FeedbackTest, LockedBatchesCompleteAbandonLapseAndDropAtTheMaximum) {
  CreateDevice("dev-1");
  for (int i = 0; i < 3; ++i) {
    Send("dev-1", "m-" + std::to_string(i), v1::ACK_MODE_POSITIVE);
    ASSERT_TRUE(Settle("complete", "dev-1", ReceiveToken("dev-1")).ok());
  }
  v1::ReceiveFeedbackRequest req;
  *req.mutable_lock_duration() = TimeUtil::SecondsToDuration(5);
  v1::FeedbackBatch batch;
  ASSERT_TRUE(feedback_->Receive(Owner().get(), req, &batch).ok());
  ASSERT_EQ(batch.records_size(), 3);
  EXPECT_EQ(batch.records(0).status_code(), "Success");
  EXPECT_EQ(batch.records(0).original_message_id(), "m-0");
  v1::FeedbackBatch none;
  ASSERT_TRUE(feedback_->Receive(Owner().get(), req, &none).ok());
  EXPECT_EQ(none.records_size(), 0);  // locked: no competing receiver gets them
  // The lock lapses: another receiver gets them, and the old token is lost.
  api_->clock().Advance(6s);
  v1::FeedbackBatch again;
  ASSERT_TRUE(feedback_->Receive(Owner().get(), req, &again).ok());
  ASSERT_EQ(again.records_size(), 3);
  v1::SettleFeedbackRequest settle;
  settle.set_lock_token(batch.lock_token());
  v1::SettleFeedbackResponse settled;
  auto ctx = Owner();
  EXPECT_EQ(feedback_->Complete(ctx.get(), settle, &settled).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(testing::ErrorReason(*ctx), "DeviceMessageLockLost");
  settle.set_lock_token(again.lock_token());
  ASSERT_TRUE(feedback_->Complete(Owner().get(), settle, &settled).ok());
  ASSERT_TRUE(feedback_->Complete(Owner().get(), settle, &settled).ok());  // a repeat is OK
  ASSERT_TRUE(feedback_->Receive(Owner().get(), req, &none).ok());
  EXPECT_EQ(none.records_size(), 0);

  // Abandoned ten times: dropped.
  Send("dev-1", "m-drop", v1::ACK_MODE_POSITIVE);
  ASSERT_TRUE(Settle("complete", "dev-1", ReceiveToken("dev-1")).ok());
  for (int i = 0; i < 10; ++i) {
    v1::FeedbackBatch one;
    ASSERT_TRUE(feedback_->Receive(Owner().get(), req, &one).ok());
    ASSERT_EQ(one.records_size(), 1) << i;
    settle.set_lock_token(one.lock_token());
    ASSERT_TRUE(feedback_->Abandon(Owner().get(), settle, &settled).ok());
  }
  ASSERT_TRUE(feedback_->Receive(Owner().get(), req, &none).ok());
  EXPECT_EQ(none.records_size(), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_feedback WHERE state = 'Dropped'"), 1);
  // Past the TTL the sweeper deletes them all.
  api_->clock().Advance(3601s);
  EXPECT_EQ(api_->sweeper().Pass().feedback_expired, 4);
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_feedback"), 0);
}

TEST_F(FeedbackTest, WatchResumesAfterADisconnectMissingNothingAndRepeatingNothing) {
  CreateDevice("dev-1");
  for (int i = 0; i < 3; ++i) {
    Send("dev-1", "m-" + std::to_string(i), v1::ACK_MODE_FULL);
    ASSERT_TRUE(Settle("complete", "dev-1", ReceiveToken("dev-1")).ok());
  }
  std::string position;
  std::vector<std::string> seen;
  {
    auto ctx = Owner();
    auto stream = feedback_->Watch(ctx.get(), v1::WatchFeedbackRequest());
    v1::FeedbackBatch batch;
    while (seen.size() < 3 && stream->Read(&batch)) {
      for (const auto& r : batch.records()) seen.push_back(r.original_message_id());
      position = batch.position();
    }
    ctx->TryCancel();
    (void)stream->Finish();
  }
  ASSERT_EQ(seen, (std::vector<std::string>{"m-0", "m-1", "m-2"}));
  // While disconnected, more outcomes; a receiver completing records does not
  // hide them from Watch.
  for (int i = 3; i < 5; ++i) {
    Send("dev-1", "m-" + std::to_string(i), v1::ACK_MODE_FULL);
    ASSERT_TRUE(Settle("reject", "dev-1", ReceiveToken("dev-1")).ok());
  }
  v1::FeedbackBatch taken;
  ASSERT_TRUE(feedback_->Receive(Owner().get(), v1::ReceiveFeedbackRequest(), &taken).ok());
  v1::SettleFeedbackRequest settle;
  settle.set_lock_token(taken.lock_token());
  v1::SettleFeedbackResponse settled;
  ASSERT_TRUE(feedback_->Complete(Owner().get(), settle, &settled).ok());
  auto ctx = Owner();
  v1::WatchFeedbackRequest resume;
  resume.set_position(position);
  auto stream = feedback_->Watch(ctx.get(), resume);
  std::vector<std::string> after;
  v1::FeedbackBatch batch;
  while (after.size() < 2 && stream->Read(&batch)) {
    for (const auto& r : batch.records())
      after.push_back(r.original_message_id() + "/" + r.status_code());
  }
  EXPECT_EQ(after, (std::vector<std::string>{"m-3/Rejected", "m-4/Rejected"}));
  // A new outcome arrives on the open stream as it is written.
  Send("dev-1", "m-5", v1::ACK_MODE_FULL);
  ASSERT_TRUE(Settle("complete", "dev-1", ReceiveToken("dev-1")).ok());
  ASSERT_TRUE(stream->Read(&batch));
  ASSERT_EQ(batch.records_size(), 1);
  EXPECT_EQ(batch.records(0).original_message_id(), "m-5");
  ctx->TryCancel();
  (void)stream->Finish();
}

TEST_F(FeedbackTest, WatchReadsSeeARecordThatCommittedLaterWithASmallerId) {
  CreateDevice("dev-1");
  Send("dev-1", "seed", v1::ACK_MODE_NONE);  // creates the device's queue row
  const auto insert = [&](pqxx::work& tx, const std::string& id) {
    tx.exec0(
        "INSERT INTO c2d_feedback (device_id, device_generation_id, original_message_id, "
        "sequence_number, status,"
        " description, enqueued_at, expires_at) VALUES ('dev-1', 'g', '" +
        id + "', 1, 'Success', 'Success', now(), now() + interval '1 day')");
  };
  pqxx::connection a_conn(db_.url()), b_conn(db_.url());
  pqxx::work a(a_conn), b(b_conn);
  insert(a, "first-id");
  insert(b, "second-id");
  b.commit();
  std::vector<c2d::FeedbackRecord> seen;
  EXPECT_TRUE(api_->feedback_store().Read(d2c::Position{0, -1}, api_->clock().Now(), 10).empty());
  a.commit();
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        seen = api_->feedback_store().Read(d2c::Position{0, -1}, api_->clock().Now(), 10);
        return seen.size() >= 2;
      },
      30s));
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_TRUE(api_->feedback_store().Read(seen.back().position, api_->clock().Now(), 10).empty());
}

TEST_F(FeedbackTest, DeletingADeviceDropsItsFeedbackAndTheSweeperKeepsItsPromises) {
  CreateDevice("dev-1");
  CreateDevice("dev-2");
  Send("dev-1", "m-1", v1::ACK_MODE_FULL);
  ASSERT_TRUE(Settle("complete", "dev-1", ReceiveToken("dev-1")).ok());
  Send("dev-2", "m-1", v1::ACK_MODE_FULL);
  ASSERT_TRUE(Settle("complete", "dev-2", ReceiveToken("dev-2")).ok());
  v1::DeleteDeviceRequest del;
  del.set_device_id("dev-1");
  v1::DeleteDeviceResponse deleted;
  ASSERT_TRUE(registry_->DeleteDevice(Owner().get(), del, &deleted).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_feedback"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_feedback WHERE device_id = 'dev-2'"), 1);

  // A lapsed lock goes back to Enqueued with its count unchanged.
  Send("dev-2", "m-2", v1::ACK_MODE_NONE);
  (void)ReceiveToken("dev-2");
  api_->clock().Advance(61s);
  EXPECT_EQ(api_->sweeper().Pass().released, 1);
  EXPECT_EQ(
      Count("SELECT count(*) FROM c2d_messages WHERE message_id = 'm-2' AND state = 'Enqueued'"
            " AND delivery_count = 0"),
      1);
  // Finished messages go after the history retention (48 h); their ids are
  // known until then.
  api_->clock().Advance(47h);
  EXPECT_EQ(api_->sweeper().Pass().trimmed, 0);
  api_->clock().Advance(2h);
  EXPECT_EQ(api_->sweeper().Pass().trimmed, 1);  // dev-2's m-1
  EXPECT_EQ(Count("SELECT count(*) FROM c2d_messages WHERE message_id = 'm-1'"), 0);
}

}  // namespace
}  // namespace ferry
