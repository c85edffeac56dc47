#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "core/auth/sas.h"
#include "core/error.h"
#include "ferry/v1/access.grpc.pb.h"
#include "ferry/v1/audit.grpc.pb.h"
#include "ferry/v1/c2d.grpc.pb.h"
#include "ferry/v1/device_messaging.grpc.pb.h"
#include "ferry/v1/events.grpc.pb.h"
#include "ferry/v1/feedback.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "ferry/v1/routing.grpc.pb.h"
#include "services/rpc/method_rules.h"
#include "tests/support/api_harness.h"
#include "tests/support/pg.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

// Every Ferry service (the method_rules_test checks no proto file has more).
std::vector<const google::protobuf::ServiceDescriptor*> FerryServices() {
  return {v1::Device::descriptor()->file()->FindServiceByName("Registry"),
          v1::Policy::descriptor()->file()->FindServiceByName("AccessPolicies"),
          v1::D2cMessage::descriptor()->file()->FindServiceByName("DeviceMessaging"),
          v1::Route::descriptor()->file()->FindServiceByName("Routing"),
          v1::StoredEvent::descriptor()->file()->FindServiceByName("Events"),
          v1::C2dMessage::descriptor()->file()->FindServiceByName("CloudToDevice"),
          v1::FeedbackRecord::descriptor()->file()->FindServiceByName("Feedback"),
          v1::AuditRecord::descriptor()->file()->FindServiceByName("AuditLog")};
}

// Calls any method with an empty request message, through the generic
// (streaming) stub, so it works for unary and streaming methods alike.
grpc::Status CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& token) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  if (!token.empty()) ctx.AddMetadata("authorization", token);
  grpc::CompletionQueue cq;
  void* tag = nullptr;
  bool ok = false;
  auto call = stub.PrepareCall(&ctx, method, &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  for (;;) {
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
    if (!ok) break;
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  return status;
}

class AccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    api_ = std::make_unique<testing::ApiHarness>(db_.url());
    registry_ = v1::Registry::NewStub(api_->Channel());
    policies_ = v1::AccessPolicies::NewStub(api_->Channel());
  }

  // A digest of every row Ferry's API can change.
  std::string Snapshot() {
    pqxx::connection conn(db_.url());
    pqxx::nontransaction tx(conn);
    return tx
        .exec(
            "SELECT coalesce((SELECT md5(string_agg(d::text, '|' ORDER BY d::text)) FROM devices "
            "d), '')"
            " || coalesce((SELECT md5(string_agg(p::text, '|' ORDER BY p::text))"
            " FROM shared_access_policies p), '')")[0][0]
        .as<std::string>();
  }

  v1::Policy CreatePolicy(const std::string& name, std::vector<v1::AccessPermission> perms,
                          grpc::Status* status = nullptr, const std::string& token = "") {
    v1::CreatePolicyRequest req;
    req.mutable_policy()->set_name(name);
    for (auto p : perms) req.mutable_policy()->add_permissions(p);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", token.empty() ? api_->OwnerToken() : token);
    v1::Policy out;
    const grpc::Status s = policies_->CreatePolicy(&ctx, req, &out);
    if (status != nullptr) {
      *status = s;
    } else {
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    return out;
  }

  v1::Device CreateDevice(const std::string& id, const std::string& token = "") {
    v1::CreateDeviceRequest req;
    req.mutable_device()->set_device_id(id);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", token.empty() ? api_->OwnerToken() : token);
    v1::Device out;
    const grpc::Status s = registry_->CreateDevice(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  grpc::Status ListDevices(const std::string& token) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", token);
    v1::ListDevicesRequest req;
    v1::ListDevicesResponse resp;
    return registry_->ListDevices(&ctx, req, &resp);
  }

  std::string PolicyToken(const v1::Policy& p, bool secondary = false) {
    return api_->Token(testing::kHubHost, secondary ? p.secondary_key() : p.primary_key(),
                       p.name());
  }

  std::string DeviceToken(const std::string& id, const std::string& key) {
    return api_->Token(std::string(testing::kHubHost) + "/devices/" + id, key, std::nullopt);
  }

  // Authorizes acting as `device` the way a device-facing RPC does.
  std::optional<Reason> ActAs(const std::string& device, const std::string& token) {
    try {
      (void)api_->authorizer().Authorize({auth::Permission::kDeviceConnect, device}, token);
      return std::nullopt;
    } catch (const Error& e) {
      return e.reason();
    }
  }

  testing::TestDatabase db_;
  std::unique_ptr<testing::ApiHarness> api_;
  std::unique_ptr<v1::Registry::Stub> registry_;
  std::unique_ptr<v1::AccessPolicies::Stub> policies_;
};

TEST_F(AccessTest, EveryMethodRefusesCallsWithoutAValidTokenAndChangesNothing) {
  CreateDevice("existing");
  const v1::Policy device_only =
      CreatePolicy("device-only", {v1::ACCESS_PERMISSION_DEVICE_CONNECT});
  const std::string before = Snapshot();
  int methods = 0;
  for (const auto* service : FerryServices()) {
    ASSERT_NE(service, nullptr);
    for (int i = 0; i < service->method_count(); ++i) {
      const auto* m = service->method(i);
      const std::string path = "/" + service->full_name() + "/" + m->name();
      const rpc::MethodRule* rule = rpc::FindMethodRule(service->full_name(), m->name());
      ASSERT_NE(rule, nullptr) << path << " has no access rule";
      ++methods;
      EXPECT_EQ(CallRaw(api_->Channel(), path, "").error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << path << " without a token";
      EXPECT_EQ(
          CallRaw(api_->Channel(), path, "SharedAccessSignature sr=x&sig=y&se=1").error_code(),
          grpc::StatusCode::UNAUTHENTICATED)
          << path << " with a malformed token";
      const std::string forged =
          api_->Token(testing::kHubHost, device_only.secondary_key(), "iothubowner");
      EXPECT_EQ(CallRaw(api_->Channel(), path, forged).error_code(),
                grpc::StatusCode::UNAUTHENTICATED)
          << path << " with a forged owner token";
      if (!rule->device_scoped) {
        EXPECT_EQ(CallRaw(api_->Channel(), path, PolicyToken(device_only)).error_code(),
                  grpc::StatusCode::PERMISSION_DENIED)
            << path << " with a policy lacking " << auth::PermissionName(rule->permission);
      }
    }
  }
  EXPECT_GE(methods, 26);
  EXPECT_EQ(Snapshot(), before);
}

// Calls without a valid credential are authenticated before any throttle:
// they draw on a budget of their own (an almost empty one here, so that the
// outcome does not depend on the machine's speed) and never on the budget
// of the operators and devices that hold credentials.
TEST_F(AccessTest, UnauthenticatedCallsCannotThrottleOperatorsOut) {
  const v1::Policy device_only =
      CreatePolicy("device-only", {v1::ACCESS_PERMISSION_DEVICE_CONNECT});
  // One call each, refilled only after 1000 s.
  api_->runtime().SetThrottles({.registry = 0.001, .unauthenticated = 0.001});
  const std::string method = "/ferry.v1.Registry/ListDevices";
  int unauthenticated = 0, throttled = 0, other = 0;
  for (int i = 0; i < 40; ++i) {
    // No token, a malformed one, a policy without the permission.
    const std::string token = i % 3 == 0   ? ""
                              : i % 3 == 1 ? "SharedAccessSignature sr=x&sig=y&se=1"
                                           : PolicyToken(device_only);
    const grpc::Status s = CallRaw(api_->Channel(), method, token);
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
        s.error_message().starts_with("ThrottlingException: ")) {
      ++throttled;
    } else if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      ++unauthenticated;
    } else {
      ++other;
    }
  }
  EXPECT_EQ(unauthenticated, 1);  // the budget's one call
  EXPECT_EQ(throttled, 39);
  EXPECT_EQ(other, 0);
  // The registry's budget is whole: the owner's call passes, and only an
  // authorized call over it is throttled.
  EXPECT_TRUE(ListDevices(api_->OwnerToken()).ok());
  EXPECT_EQ(ListDevices(api_->OwnerToken()).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(AccessTest, OnlyAHolderOfAllFourManagesPolicies) {
  const v1::Policy writer = CreatePolicy(
      "registry-rw", {v1::ACCESS_PERMISSION_REGISTRY_READ, v1::ACCESS_PERMISSION_REGISTRY_WRITE});
  const std::string token = PolicyToken(writer);
  grpc::Status s;
  CreatePolicy("sneaky", {v1::ACCESS_PERMISSION_SERVICE_CONNECT}, &s, token);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // It can do what it holds.
  CreateDevice("made-by-writer", token);
  EXPECT_TRUE(ListDevices(token).ok());

  const v1::Policy three = CreatePolicy(
      "almost-owner", {v1::ACCESS_PERMISSION_REGISTRY_READ, v1::ACCESS_PERMISSION_REGISTRY_WRITE,
                       v1::ACCESS_PERMISSION_SERVICE_CONNECT});
  CreatePolicy("sneaky", {v1::ACCESS_PERMISSION_SERVICE_CONNECT}, &s, PolicyToken(three));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AccessTest, PolicyLimitsHoldAsIotHubs) {
  grpc::Status s;
  // The owner counts: 9 more with ServiceConnect make 10.
  for (int i = 0; i < 9; ++i) {
    CreatePolicy("svc-" + std::to_string(i), {v1::ACCESS_PERMISSION_SERVICE_CONNECT});
  }
  CreatePolicy("svc-10", {v1::ACCESS_PERMISSION_SERVICE_CONNECT}, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  for (int i = 0; i < 6; ++i) {
    CreatePolicy("read-" + std::to_string(i), {v1::ACCESS_PERMISSION_REGISTRY_READ});
  }
  CreatePolicy("read-16", {v1::ACCESS_PERMISSION_REGISTRY_READ}, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();

  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::ListPoliciesResponse all;
  ASSERT_TRUE(policies_->ListPolicies(&ctx, v1::ListPoliciesRequest(), &all).ok());
  EXPECT_EQ(all.policies_size(), 16);

  // The last owner can be neither deleted nor narrowed.
  grpc::ClientContext del;
  api_->AsOwner(del);
  v1::DeletePolicyRequest req;
  req.set_name("iothubowner");
  v1::DeletePolicyResponse ignored;
  EXPECT_EQ(policies_->DeletePolicy(&del, req, &ignored).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  grpc::ClientContext upd;
  api_->AsOwner(upd);
  v1::UpdatePolicyRequest narrow;
  narrow.mutable_policy()->set_name("iothubowner");
  narrow.mutable_policy()->add_permissions(v1::ACCESS_PERMISSION_REGISTRY_READ);
  v1::Policy unchanged;
  EXPECT_EQ(policies_->UpdatePolicy(&upd, narrow, &unchanged).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(AccessTest, PolicyCrudErrors) {
  grpc::Status s;
  CreatePolicy("dup", {v1::ACCESS_PERMISSION_REGISTRY_READ});
  CreatePolicy("dup", {v1::ACCESS_PERMISSION_REGISTRY_READ}, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  CreatePolicy("bad name!", {v1::ACCESS_PERMISSION_REGISTRY_READ}, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  CreatePolicy("no-perms", {}, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::GetPolicyRequest get;
  get.set_name("ghost");
  v1::Policy out;
  EXPECT_EQ(policies_->GetPolicy(&ctx, get, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(testing::ErrorReason(ctx), "PolicyNotFound");
}

TEST_F(AccessTest, BothKeysWorkAndARegeneratedKeyStopsWorkingWithinTwoSeconds) {
  const v1::Policy reader = CreatePolicy("reader", {v1::ACCESS_PERMISSION_REGISTRY_READ});
  const std::string old_primary = PolicyToken(reader);
  EXPECT_TRUE(ListDevices(old_primary).ok());
  EXPECT_TRUE(ListDevices(PolicyToken(reader, true)).ok());

  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::RegeneratePolicyKeyRequest regen;
  regen.set_name("reader");
  regen.set_slot(v1::KEY_SLOT_PRIMARY);
  v1::Policy rotated;
  ASSERT_TRUE(policies_->RegeneratePolicyKey(&ctx, regen, &rotated).ok());
  EXPECT_NE(rotated.primary_key(), reader.primary_key());
  EXPECT_EQ(rotated.secondary_key(), reader.secondary_key());
  EXPECT_TRUE(testing::WaitFor(
      [&] { return ListDevices(old_primary).error_code() == grpc::StatusCode::UNAUTHENTICATED; },
      10s));
  EXPECT_TRUE(ListDevices(PolicyToken(rotated)).ok());
  EXPECT_TRUE(ListDevices(PolicyToken(reader, true)).ok());
}

TEST_F(AccessTest, DeviceKeysActForTheirDeviceOnlyAndRotate) {
  const v1::Device a = CreateDevice("Dev-A");
  const v1::Device b = CreateDevice("Dev-B");
  EXPECT_EQ(ActAs("Dev-A", DeviceToken("Dev-A", a.authentication().primary_key())), std::nullopt);
  EXPECT_EQ(ActAs("Dev-A", DeviceToken("Dev-A", a.authentication().secondary_key())), std::nullopt);
  EXPECT_EQ(ActAs("Dev-A", DeviceToken("Dev-B", b.authentication().primary_key())),
            Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(ListDevices(DeviceToken("Dev-A", a.authentication().primary_key())).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::RegenerateDeviceKeyRequest regen;
  regen.set_device_id("Dev-A");
  regen.set_slot(v1::KEY_SLOT_SECONDARY);
  v1::Device rotated;
  ASSERT_TRUE(registry_->RegenerateDeviceKey(&ctx, regen, &rotated).ok());
  EXPECT_EQ(rotated.authentication().primary_key(), a.authentication().primary_key());
  const std::string old_secondary = DeviceToken("Dev-A", a.authentication().secondary_key());
  EXPECT_TRUE(testing::WaitFor([&] { return ActAs("Dev-A", old_secondary).has_value(); }, 10s));
  EXPECT_EQ(ActAs("Dev-A", DeviceToken("Dev-A", rotated.authentication().secondary_key())),
            std::nullopt);
}

TEST_F(AccessTest, ADisabledDeviceIsRefusedWithinTwoSecondsEvenWhenAnotherReplicaDisabledIt) {
  const v1::Device a = CreateDevice("dev-a");
  const std::string token = DeviceToken("dev-a", a.authentication().primary_key());
  ASSERT_EQ(ActAs("dev-a", token), std::nullopt);  // now cached
  // Another replica (here: plain SQL on another connection) disables it.
  {
    pqxx::connection conn(db_.url());
    pqxx::work tx(conn);
    tx.exec0("UPDATE devices SET status = 'disabled' WHERE device_id = 'dev-a'");
    tx.commit();
  }
  EXPECT_TRUE(testing::WaitFor([&] { return ActAs("dev-a", token).has_value(); }, 10s));
  EXPECT_EQ(ActAs("dev-a", token), Reason::kIotHubUnauthorizedAccess);
}

TEST_F(AccessTest, ADeletedAndRecreatedDevicesOldKeyNoLongerWorks) {
  const v1::Device first = CreateDevice("phoenix");
  const std::string old_token = DeviceToken("phoenix", first.authentication().primary_key());
  ASSERT_EQ(ActAs("phoenix", old_token), std::nullopt);
  grpc::ClientContext ctx;
  api_->AsOwner(ctx);
  v1::DeleteDeviceRequest del;
  del.set_device_id("phoenix");
  v1::DeleteDeviceResponse ignored;
  ASSERT_TRUE(registry_->DeleteDevice(&ctx, del, &ignored).ok());
  const v1::Device second = CreateDevice("phoenix");
  EXPECT_TRUE(testing::WaitFor([&] { return ActAs("phoenix", old_token).has_value(); }, 10s));
  EXPECT_EQ(ActAs("phoenix", DeviceToken("phoenix", second.authentication().primary_key())),
            std::nullopt);
}

TEST_F(AccessTest, AuthorizingCostsNoDatabaseRoundTripOnceCached) {
  ASSERT_TRUE(ListDevices(api_->OwnerToken()).ok());
  auto misses = [&] {
    double n = 0;
    for (const auto& f : api_->metrics().Collect()) {
      if (f.name != "ferry_auth_cache_lookups_total") continue;
      for (const auto& m : f.metric) {
        for (const auto& l : m.label) {
          if (l.name == "result" && l.value == "miss") n += m.counter.value;
        }
      }
    }
    return n;
  };
  const double before = misses();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(ListDevices(api_->OwnerToken()).ok());
  EXPECT_EQ(misses(), before);
}

TEST_F(AccessTest, AdministrativeChangesAreAuditedWithWhoDidThem) {
  const v1::Policy ops = CreatePolicy(
      "ops", {v1::ACCESS_PERMISSION_SERVICE_CONNECT, v1::ACCESS_PERMISSION_REGISTRY_WRITE,
              v1::ACCESS_PERMISSION_REGISTRY_READ});
  const std::string ops_token = PolicyToken(ops);
  auto call = [&](const std::string& token, auto&& rpc) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", token);
    return rpc(ctx);
  };
  {
    v1::UpdatePolicyRequest req;
    *req.mutable_policy() = ops;
    req.mutable_policy()->clear_primary_key();
    req.mutable_policy()->clear_secondary_key();
    v1::Policy out;
    ASSERT_TRUE(call(api_->OwnerToken(), [&](auto& ctx) {
                  return policies_->UpdatePolicy(&ctx, req, &out);
                }).ok());
    v1::RegeneratePolicyKeyRequest regen;
    regen.set_name("ops");
    regen.set_slot(v1::KEY_SLOT_SECONDARY);
    ASSERT_TRUE(call(api_->OwnerToken(), [&](auto& ctx) {
                  return policies_->RegeneratePolicyKey(&ctx, regen, &out);
                }).ok());
  }
  CreateDevice("doomed");
  auto c2d = v1::CloudToDevice::NewStub(api_->Channel());
  {
    v1::PurgeQueueRequest purge;
    purge.set_device_id("doomed");
    v1::PurgeQueueResponse purged;
    ASSERT_TRUE(
        call(ops_token, [&](auto& ctx) { return c2d->PurgeQueue(&ctx, purge, &purged); }).ok());
    v1::DeleteDeviceRequest del;
    del.set_device_id("doomed");
    v1::DeleteDeviceResponse ignored;
    ASSERT_TRUE(call(ops_token, [&](auto& ctx) {
                  return registry_->DeleteDevice(&ctx, del, &ignored);
                }).ok());
    // A refused operation changed nothing and leaves no record.
    EXPECT_EQ(
        call(ops_token, [&](auto& ctx) { return registry_->DeleteDevice(&ctx, del, &ignored); })
            .error_code(),
        grpc::StatusCode::NOT_FOUND);
  }
  {
    v1::DeletePolicyRequest del;
    del.set_name("ops");
    v1::DeletePolicyResponse ignored;
    ASSERT_TRUE(call(api_->OwnerToken(), [&](auto& ctx) {
                  return policies_->DeletePolicy(&ctx, del, &ignored);
                }).ok());
  }

  // Read back through the API, two at a time.
  auto audit = v1::AuditLog::NewStub(api_->Channel());
  std::vector<v1::AuditRecord> records;
  v1::ListAuditRecordsRequest req;
  req.set_page_size(2);
  for (int pages = 0; pages < 10; ++pages) {
    v1::ListAuditRecordsResponse page;
    const grpc::Status s = call(
        api_->OwnerToken(), [&](auto& ctx) { return audit->ListAuditRecords(&ctx, req, &page); });
    ASSERT_TRUE(s.ok()) << s.error_message();
    records.insert(records.end(), page.records().begin(), page.records().end());
    if (page.next_after_id() == 0) break;
    req.set_after_id(page.next_after_id());
  }
  std::vector<std::string> seen;
  for (const auto& r : records) {
    seen.push_back(r.action() + " " + r.target() + " by " + r.actor_kind() + ":" + r.actor());
    EXPECT_GT(r.time().seconds(), 0);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "policy.create ops by policy:iothubowner",
                      "policy.update ops by policy:iothubowner",
                      "policy.regenerate_key ops by policy:iothubowner",
                      "c2d.purge doomed by policy:ops",
                      "device.delete doomed by policy:ops",
                      "policy.delete ops by policy:iothubowner",
                  }));
  ASSERT_EQ(records.size(), 6u);
  EXPECT_NE(records[2].details_json().find("\"slot\": \"secondary\""), std::string::npos)
      << records[2].details_json();
  EXPECT_NE(records[3].details_json().find("\"purged\": 0"), std::string::npos)
      << records[3].details_json();

  // Filters, and who may read it: not a device.
  v1::ListAuditRecordsRequest only_deletes;
  only_deletes.set_action("device.delete");
  v1::ListAuditRecordsResponse deletes;
  ASSERT_TRUE(call(api_->OwnerToken(), [&](auto& ctx) {
                return audit->ListAuditRecords(&ctx, only_deletes, &deletes);
              }).ok());
  ASSERT_EQ(deletes.records_size(), 1);
  EXPECT_EQ(deletes.records(0).target(), "doomed");
  EXPECT_EQ(deletes.next_after_id(), 0);
  const v1::Device device = CreateDevice("reader");
  v1::ListAuditRecordsResponse denied;
  EXPECT_EQ(call(DeviceToken("reader", device.authentication().primary_key()),
                 [&](auto& ctx) { return audit->ListAuditRecords(&ctx, only_deletes, &denied); })
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace ferry
