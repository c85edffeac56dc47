#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <prometheus/registry.h>

#include "consumers/d2c/consumer.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "services/rpc/proto_time.h"
#include "store/d2c/event_store.h"
#include "tests/support/api_harness.h"
#include "tests/support/kafka.h"
#include "tests/support/pg.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

class DeviceMessagingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    api_ = std::make_unique<testing::ApiHarness>(db_.url());
    stub_ = v1::DeviceMessaging::NewStub(api_->Channel());
    registry_ = v1::Registry::NewStub(api_->Channel());
    device_ = CreateDevice("thermostat-7");
  }

  v1::Device CreateDevice(const std::string& id) {
    v1::CreateDeviceRequest req;
    req.mutable_device()->set_device_id(id);
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    v1::Device d;
    EXPECT_TRUE(registry_->CreateDevice(&ctx, req, &d).ok());
    return d;
  }

  std::string DeviceToken(const v1::Device& d) {
    return api_->Token(std::string(testing::kHubHost) + "/devices/" + d.device_id(),
                       d.authentication().primary_key(), std::nullopt);
  }

  grpc::Status Send(const std::string& device_id, const std::string& token, const v1::D2cMessage& m,
                    v1::SendEventResponse* out = nullptr, std::string* reason = nullptr,
                    std::chrono::milliseconds deadline = 10s) {
    v1::SendEventRequest req;
    req.set_device_id(device_id);
    *req.mutable_message() = m;
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", token);
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    v1::SendEventResponse resp;
    const grpc::Status s = stub_->SendEvent(&ctx, req, &resp);
    if (out != nullptr) *out = resp;
    if (reason != nullptr) *reason = testing::ErrorReason(ctx);
    return s;
  }

  // Runs a D2C consumer until the checkpoints cover `records` records.
  void LandUntilCheckpointsCover(long records) {
    pg::Pool pool(pg::PoolOptions{.url = db_.url(), .max_size = 4}, nullptr);
    d2c::EventStore store(pool);
    store.EnsureDays(api_->clock().Now(), 3, 1);
    d2c::ConsumerOptions o;
    o.brokers = api_->kafka().bootstrap();
    o.owner = "t";
    o.kafka = testing::FastGroupTimers();
    prometheus::Registry registry;
    d2c::D2cConsumer consumer(o, store, api_->clock(), registry);
    consumer.Start();
    EXPECT_TRUE(testing::WaitFor(
        [&] {
          return Count("SELECT coalesce(sum(next_offset), 0) FROM d2c_checkpoints") >= records;
        },
        60s));
    consumer.Stop();
  }

  long Count(const std::string& sql) {
    pqxx::connection conn(db_.url());
    pqxx::nontransaction tx(conn);
    return tx.exec(sql)[0][0].as<long>();
  }
  std::string Text(const std::string& sql) {
    pqxx::connection conn(db_.url());
    pqxx::nontransaction tx(conn);
    return tx.exec(sql)[0][0].as<std::string>();
  }

  testing::TestDatabase db_;
  std::unique_ptr<testing::ApiHarness> api_;
  std::unique_ptr<v1::DeviceMessaging::Stub> stub_;
  std::unique_ptr<v1::Registry::Stub> registry_;
  v1::Device device_;
};

TEST_F(DeviceMessagingTest, SentEventsAreAcknowledgedStampedAndLandOnce) {
  v1::D2cMessage m;
  m.set_body("{\"temp\":21.5}");
  m.set_message_id("m-1");
  m.set_content_type("application/json");
  m.set_content_encoding("utf-8");
  (*m.mutable_properties())["alert"] = "false";
  // Creating the device published its lifecycle event first, on the
  // device's partition.
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Count("SELECT count(*) FROM device_lifecycle_outbox") == 0; }, 30s));
  v1::SendEventResponse resp;
  const grpc::Status s = Send("thermostat-7", DeviceToken(device_), m, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_GE(resp.partition(), 0);
  EXPECT_EQ(resp.offset(), 1);

  // A batch, through a policy with DeviceConnect acting for the device.
  v1::SendEventBatchRequest batch;
  batch.set_device_id("thermostat-7");
  for (int i = 0; i < 3; ++i) {
    v1::D2cMessage* bm = batch.add_messages();
    bm->set_body(std::to_string(i));
    bm->set_message_id("b-" + std::to_string(i));
  }
  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::SendEventBatchResponse batch_resp;
  ASSERT_TRUE(stub_->SendEventBatch(&ctx, batch, &batch_resp).ok());
  ASSERT_EQ(batch_resp.results_size(), 3);
  EXPECT_EQ(batch_resp.results(2).offset(), 4);  // one device: one partition, in order

  // Land them with the d2c consumer and look at what Ferry stamped.
  LandUntilCheckpointsCover(5);
  // The lifecycle event matched no lifecycle route: dropped and counted.
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 4);
  EXPECT_EQ(Count("SELECT sum(dropped) FROM d2c_checkpoints"), 1);
  const std::string where = " FROM d2c_events WHERE message_id = 'm-1'";
  EXPECT_EQ(Text("SELECT device_id" + where), "thermostat-7");
  EXPECT_EQ(Text("SELECT system_properties->>'iothub-connection-auth-generation-id'" + where),
            device_.generation_id());
  EXPECT_EQ(Text("SELECT system_properties->>'iothub-message-source'" + where), "Telemetry");
  EXPECT_EQ(
      Text("SELECT (system_properties->>'iothub-connection-auth-method')::jsonb->>'scope'" + where),
      "device");
  EXPECT_EQ(Text("SELECT application_properties->>'alert'" + where), "false");
  EXPECT_EQ(Text("SELECT content_type" + where), "application/json");
  EXPECT_EQ(Text("SELECT (system_properties->>'iothub-connection-auth-method')::jsonb->>'scope'"
                 " FROM d2c_events WHERE message_id = 'b-0'"),
            "hub");
}

// Up to exactly 256 KB as IoT Hub counts (body, system property values,
// application property names and values; not the hub's own stamps): what
// SendEvent acknowledges lands, at the enqueued time it answered.
TEST_F(DeviceMessagingTest, WhatIsAcknowledgedUpTo256KBLandsAtTheAnsweredTime) {
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Count("SELECT count(*) FROM device_lifecycle_outbox") == 0; }, 30s));
  // A clock between two milliseconds: an answer with microseconds would
  // miss the stored time.
  if (ToUnixMicros(api_->clock().Now()) % 1000 == 0)
    api_->clock().Advance(std::chrono::microseconds(1));
  const auto message = [](const std::string& id, std::size_t body) {
    v1::D2cMessage m;
    m.set_message_id(id);                           // a system property: its value counts
    (*m.mutable_properties())["site"] = "plant-4";  // 4 + 7
    m.set_body(std::string(body, 'x'));
    return m;
  };
  const std::size_t props = 6 + 4 + 7;
  v1::SendEventResponse near, exact;
  ASSERT_TRUE(Send("thermostat-7", DeviceToken(device_), message("m-near", 262080), &near).ok());
  ASSERT_TRUE(
      Send("thermostat-7", DeviceToken(device_), message("m-exac", 256 * 1024 - props), &exact)
          .ok());
  std::string reason;
  EXPECT_EQ(Send("thermostat-7", DeviceToken(device_), message("m-over", 256 * 1024 - props + 1),
                 nullptr, &reason)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(reason, "MessageTooLarge");

  LandUntilCheckpointsCover(exact.offset() + 1);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_dead_letters"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 2);
  for (const auto& [id, resp] : {std::pair{"m-near", near}, std::pair{"m-exac", exact}}) {
    const std::string where = std::string(" FROM d2c_events WHERE message_id = '") + id + "'";
    EXPECT_EQ(Count("SELECT kafka_offset" + where), resp.offset()) << id;
    // The answered time, to the microsecond, is the stored one.
    EXPECT_EQ(Count("SELECT (extract(epoch FROM enqueued_time) * 1000000)::bigint" + where),
              ToUnixMicros(rpc::FromProtoTime(resp.enqueued_time())))
        << id;
  }
}

TEST_F(DeviceMessagingTest, RefusalsAsIotHubs) {
  v1::D2cMessage m;
  m.set_body("x");
  std::string reason;
  // Another device's token cannot send as this one.
  const v1::Device other = CreateDevice("other");
  EXPECT_EQ(Send("thermostat-7", DeviceToken(other), m, nullptr, &reason).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Unknown device through a policy: DeviceNotFound.
  EXPECT_EQ(Send("ghost", api_->OwnerToken(), m, nullptr, &reason).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reason, "DeviceNotFound");
  // Over 256 KB, counting properties.
  v1::D2cMessage big;
  big.set_body(std::string(256 * 1024 - 10, 'x'));
  (*big.mutable_properties())["padding"] = "0123456789";
  EXPECT_EQ(Send("thermostat-7", DeviceToken(device_), big, nullptr, &reason).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(reason, "MessageTooLarge");
  v1::D2cMessage reserved;
  (*reserved.mutable_properties())["iothub-connection-device-id"] = "spoof";
  EXPECT_EQ(Send("thermostat-7", DeviceToken(device_), reserved, nullptr, &reason).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A disabled device is refused.
  v1::UpdateDeviceRequest disable;
  *disable.mutable_device() = device_;
  disable.mutable_device()->set_status(v1::DEVICE_STATUS_DISABLED);
  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::Device updated;
  ASSERT_TRUE(registry_->UpdateDevice(&ctx, disable, &updated).ok());
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return Send("thermostat-7", DeviceToken(device_), m).error_code() ==
               grpc::StatusCode::UNAUTHENTICATED;
      },
      10s));
}

TEST_F(DeviceMessagingTest, KafkaDownAnswersUnavailableAtTheDeadline) {
  v1::D2cMessage m;
  m.set_body("x");
  ASSERT_TRUE(Send("thermostat-7", DeviceToken(device_), m).ok());  // warm: metadata known
  (void)api_->kafka().Command("down 1");
  std::string reason;
  const auto started = std::chrono::steady_clock::now();
  const grpc::Status s = Send("thermostat-7", DeviceToken(device_), m, nullptr, &reason, 1500ms);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(s.error_code() == grpc::StatusCode::UNAVAILABLE ||
              s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_message();
  EXPECT_LT(took, 5s);
  (void)api_->kafka().Command("up 1");
  EXPECT_TRUE(testing::WaitFor([&] { return Send("thermostat-7", DeviceToken(device_), m).ok(); },
                               30s, 200ms));
}

}  // namespace
}  // namespace ferry
