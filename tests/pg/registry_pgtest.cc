#include <set>
#include <thread>

#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include "ferry/v1/registry.grpc.pb.h"
#include "tests/support/api_harness.h"
#include "tests/support/pg.h"

namespace ferry {
namespace {

using google::protobuf::util::TimeUtil;

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    api_ = std::make_unique<testing::ApiHarness>(db_.url());
    stub_ = v1::Registry::NewStub(api_->Channel());
  }

  grpc::Status Create(const std::string& id, v1::Device* out = nullptr,
                      std::string* reason = nullptr, const std::string& primary = "") {
    v1::CreateDeviceRequest req;
    req.mutable_device()->set_device_id(id);
    req.mutable_device()->mutable_authentication()->set_primary_key(primary);
    v1::Device resp;
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    const grpc::Status s = stub_->CreateDevice(&ctx, req, &resp);
    if (out != nullptr) *out = resp;
    if (reason != nullptr) *reason = testing::ErrorReason(ctx);
    return s;
  }

  grpc::Status Get(const std::string& id, v1::Device* out, std::string* reason = nullptr) {
    v1::GetDeviceRequest req;
    req.set_device_id(id);
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    const grpc::Status s = stub_->GetDevice(&ctx, req, out);
    if (reason != nullptr) *reason = testing::ErrorReason(ctx);
    return s;
  }

  grpc::Status Update(const v1::Device& device, const std::string& if_match, v1::Device* out,
                      std::string* reason = nullptr) {
    v1::UpdateDeviceRequest req;
    *req.mutable_device() = device;
    req.set_if_match(if_match);
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    const grpc::Status s = stub_->UpdateDevice(&ctx, req, out);
    if (reason != nullptr) *reason = testing::ErrorReason(ctx);
    return s;
  }

  grpc::Status Delete(const std::string& id, const std::string& if_match = "",
                      std::string* reason = nullptr) {
    v1::DeleteDeviceRequest req;
    req.set_device_id(id);
    req.set_if_match(if_match);
    v1::DeleteDeviceResponse resp;
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    const grpc::Status s = stub_->DeleteDevice(&ctx, req, &resp);
    if (reason != nullptr) *reason = testing::ErrorReason(ctx);
    return s;
  }

  std::vector<std::string> ListAll(int page_size, int* pages = nullptr) {
    std::vector<std::string> ids;
    std::string token;
    int n = 0;
    do {
      v1::ListDevicesRequest req;
      req.set_page_size(page_size);
      req.set_page_token(token);
      v1::ListDevicesResponse resp;
      grpc::ClientContext ctx;
      api_->AsOwner(ctx);
      const grpc::Status s = stub_->ListDevices(&ctx, req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      for (const auto& d : resp.devices()) ids.push_back(d.device_id());
      token = resp.next_page_token();
      ++n;
    } while (!token.empty());
    if (pages != nullptr) *pages = n;
    return ids;
  }

  testing::TestDatabase db_;
  std::unique_ptr<testing::ApiHarness> api_;
  std::unique_ptr<v1::Registry::Stub> stub_;
};

TEST_F(RegistryTest, CreateFillsHubAssignedFieldsAndGetReturnsThem) {
  v1::Device created;
  ASSERT_TRUE(Create("thermostat-7", &created).ok());
  EXPECT_EQ(created.device_id(), "thermostat-7");
  EXPECT_EQ(created.status(), v1::DEVICE_STATUS_ENABLED);
  EXPECT_EQ(created.generation_id().size(), 18u);
  EXPECT_FALSE(created.etag().empty());
  EXPECT_EQ(created.authentication().primary_key().size(), 44u);
  EXPECT_EQ(created.authentication().secondary_key().size(), 44u);
  EXPECT_NE(created.authentication().primary_key(), created.authentication().secondary_key());
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(created.created_time()),
            ToUnixMicros(api_->clock().Now()));
  EXPECT_EQ(created.connection_state(), v1::CONNECTION_STATE_DISCONNECTED);

  v1::Device got;
  ASSERT_TRUE(Get("thermostat-7", &got).ok());
  EXPECT_EQ(got.SerializeAsString(), created.SerializeAsString());
}

TEST_F(RegistryTest, GivenKeysAreKept) {
  const std::string key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  v1::Device created;
  ASSERT_TRUE(Create("d", &created, nullptr, key).ok());
  EXPECT_EQ(created.authentication().primary_key(), key);
}

TEST_F(RegistryTest, DuplicateIdIsDeviceAlreadyExists) {
  ASSERT_TRUE(Create("dup").ok());
  std::string reason;
  const grpc::Status s = Create("dup", nullptr, &reason);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(reason, "DeviceAlreadyExists");
  EXPECT_EQ(s.error_message().rfind("DeviceAlreadyExists: ", 0), 0u) << s.error_message();
}

TEST_F(RegistryTest, IdsAreCaseSensitive) {
  ASSERT_TRUE(Create("dev").ok());
  ASSERT_TRUE(Create("DEV").ok());
  ASSERT_TRUE(Create("Dev").ok());
  EXPECT_EQ(ListAll(10), (std::vector<std::string>{"DEV", "Dev", "dev"}));
}

TEST_F(RegistryTest, BadInputIsArgumentInvalidAndChangesNothing) {
  std::string reason;
  EXPECT_EQ(Create("has space", nullptr, &reason).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(reason, "ArgumentInvalid");
  EXPECT_EQ(Create(std::string(129, 'x'), nullptr, &reason).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create("ok-id", nullptr, &reason, "short").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(reason, "ArgumentInvalid");
  EXPECT_TRUE(ListAll(100).empty());
}

TEST_F(RegistryTest, ANulInAStatusReasonIsRefusedNotCut) {
  v1::Device created;
  ASSERT_TRUE(Create("n", &created).ok());
  v1::Device change = created;
  change.set_status_reason(std::string("stolen\0 by a neighbour", 23));
  std::string reason;
  v1::Device ignored;
  const grpc::Status s = Update(change, created.etag(), &ignored, &reason);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(reason, "ArgumentInvalid");
  EXPECT_NE(s.error_message().find("device.status_reason"), std::string::npos) << s.error_message();
  v1::Device now;
  ASSERT_TRUE(Get("n", &now).ok());
  EXPECT_EQ(now.SerializeAsString(), created.SerializeAsString());
}

TEST_F(RegistryTest, MissingDeviceIsDeviceNotFound) {
  v1::Device d;
  std::string reason;
  EXPECT_EQ(Get("ghost", &d, &reason).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reason, "DeviceNotFound");
  EXPECT_EQ(Delete("ghost", "", &reason).error_code(), grpc::StatusCode::NOT_FOUND);
  d.set_device_id("ghost");
  EXPECT_EQ(Update(d, "", &d, &reason).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reason, "DeviceNotFound");
}

TEST_F(RegistryTest, StaleEtagIsPreconditionFailedAndChangesNothing) {
  v1::Device created;
  ASSERT_TRUE(Create("e", &created).ok());
  v1::Device change = created;
  change.set_status(v1::DEVICE_STATUS_DISABLED);
  change.set_status_reason("maintenance");
  api_->clock().Advance(std::chrono::seconds(30));
  v1::Device updated;
  ASSERT_TRUE(Update(change, created.etag(), &updated).ok());
  EXPECT_EQ(updated.status(), v1::DEVICE_STATUS_DISABLED);
  EXPECT_EQ(updated.status_reason(), "maintenance");
  EXPECT_NE(updated.etag(), created.etag());
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(updated.status_update_time()),
            ToUnixMicros(api_->clock().Now()));
  EXPECT_EQ(updated.authentication().primary_key(), created.authentication().primary_key());

  // The first etag is stale now.
  change.set_status(v1::DEVICE_STATUS_ENABLED);
  std::string reason;
  v1::Device ignored;
  EXPECT_EQ(Update(change, created.etag(), &ignored, &reason).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(reason, "PreconditionFailed");
  EXPECT_EQ(Delete("e", created.etag(), &reason).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::Device now;
  ASSERT_TRUE(Get("e", &now).ok());
  EXPECT_EQ(now.SerializeAsString(), updated.SerializeAsString());

  // Quoted and weak forms of the current etag match; "*" always does.
  change.set_status_reason("back");
  EXPECT_TRUE(Update(change, "W/\"" + updated.etag() + "\"", &updated).ok());
  EXPECT_TRUE(Update(change, "*", &updated).ok());
  EXPECT_TRUE(Delete("e", updated.etag()).ok());
}

TEST_F(RegistryTest, StatusTimeMovesOnlyWhenStatusChanges) {
  v1::Device created, updated;
  ASSERT_TRUE(Create("s", &created).ok());
  api_->clock().Advance(std::chrono::seconds(5));
  v1::Device change = created;
  change.set_status_reason("same status, new reason");
  ASSERT_TRUE(Update(change, "", &updated).ok());
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(updated.status_update_time()),
            TimeUtil::TimestampToMicroseconds(created.status_update_time()));
}

TEST_F(RegistryTest, ReCreatedDeviceGetsANewGenerationAndKeys) {
  v1::Device first, second;
  ASSERT_TRUE(Create("phoenix", &first).ok());
  ASSERT_TRUE(Delete("phoenix").ok());
  v1::Device gone;
  EXPECT_EQ(Get("phoenix", &gone).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Create("phoenix", &second).ok());
  EXPECT_NE(first.generation_id(), second.generation_id());
  EXPECT_NE(first.authentication().primary_key(), second.authentication().primary_key());
  EXPECT_NE(first.etag(), second.etag());
}

TEST_F(RegistryTest, ListPagesThroughEveryDeviceExactlyOnce) {
  for (int i = 0; i < 250; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "dev-%03d", i);
    ASSERT_TRUE(Create(id).ok());
  }
  int pages = 0;
  const auto ids = ListAll(100, &pages);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(ids.size(), 250u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 250u);
  EXPECT_EQ(ListAll(0).size(), 250u);  // default page size

  v1::ListDevicesRequest req;
  v1::ListDevicesResponse resp;
  req.set_page_size(1001);
  grpc::ClientContext ctx1;
  api_->AsOwner(ctx1);
  EXPECT_EQ(stub_->ListDevices(&ctx1, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_page_size(10);
  req.set_page_token("not a token!");
  grpc::ClientContext ctx2;
  api_->AsOwner(ctx2);
  EXPECT_EQ(stub_->ListDevices(&ctx2, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RegistryTest, ConcurrentCreatesOfOneIdSucceedOnce) {
  constexpr int kThreads = 8;
  std::atomic<int> ok{0}, exists{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      const grpc::Status s = Create("contested");
      if (s.ok()) ++ok;
      if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) ++exists;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(exists.load(), kThreads - 1);
}

TEST_F(RegistryTest, EveryCallIsCountedWithItsCode) {
  ASSERT_TRUE(Create("m").ok());
  (void)Create("m");
  double ok = 0, already = 0;
  for (const auto& family : api_->metrics().Collect()) {
    if (family.name != "ferry_grpc_requests_total") continue;
    for (const auto& m : family.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (labels["method"] != "CreateDevice" || labels["service"] != "ferry.v1.Registry") continue;
      if (labels["code"] == "OK") ok = m.counter.value;
      if (labels["code"] == "ALREADY_EXISTS") already = m.counter.value;
    }
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(already, 1);
}

}  // namespace
}  // namespace ferry
