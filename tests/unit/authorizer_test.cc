#include "core/auth/authorizer.h"

#include <map>

#include <gtest/gtest.h>

#include "core/auth/sas.h"
#include "core/error.h"
#include "tests/support/fake_clock.h"

namespace ferry::auth {
namespace {

constexpr char kHub[] = "hub.example";
constexpr char kOwnerPrimary[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
constexpr char kOwnerSecondary[] = "HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo=";
constexpr char kReaderKey[] = "cmVhZGVyLWtleS1yZWFkZXIta2V5LXJlYWRlci1rZXk=";
constexpr char kDeviceA1[] = "ZGV2aWNlLWEtcHJpbWFyeS1rZXktZGV2aWNlLWEtcHI=";
constexpr char kDeviceA2[] = "ZGV2aWNlLWEtc2Vjb25kYXJ5LWtleS1kZXZpY2UtYS0=";
constexpr char kDeviceB[] = "ZGV2aWNlLWItcHJpbWFyeS1rZXktZGV2aWNlLWItcHI=";

class MemoryCredentials final : public CredentialSource {
 public:
  std::optional<PolicyCredentials> Policy(const std::string& name) override {
    const auto it = policies.find(name);
    return it == policies.end() ? std::nullopt : std::optional(it->second);
  }
  std::optional<DeviceCredentials> Device(const std::string& id) override {
    const auto it = devices.find(id);
    return it == devices.end() ? std::nullopt : std::optional(it->second);
  }
  std::map<std::string, PolicyCredentials> policies;
  std::map<std::string, DeviceCredentials> devices;
};

class AuthorizerTest : public ::testing::Test {
 protected:
  AuthorizerTest() : sas_(kHub, creds_, clock_, std::chrono::seconds(60)) {
    creds_.policies["iothubowner"] = {"iothubowner", kOwnerPrimary, kOwnerSecondary,
                                      PermissionSet::All()};
    PermissionSet read;
    read.Add(Permission::kRegistryRead);
    creds_.policies["reader"] = {"reader", kReaderKey, kReaderKey, read};
    PermissionSet device;
    device.Add(Permission::kDeviceConnect);
    creds_.policies["gateway"] = {"gateway", kReaderKey, kReaderKey, device};
    creds_.devices["dev-A"] = {"dev-A", "1", kDeviceA1, kDeviceA2, true};
    creds_.devices["dev-B"] = {"dev-B", "2", kDeviceB, kDeviceB, true};
  }

  std::int64_t Now() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch())
        .count();
  }
  std::string PolicyToken(const std::string& resource, const std::string& key,
                          const std::string& name, std::int64_t ttl = 3600) const {
    return MakeSasToken(resource, key, Now() + ttl, name);
  }
  std::string DeviceToken(const std::string& device, const std::string& key,
                          std::int64_t ttl = 3600) const {
    return MakeSasToken(std::string(kHub) + "/devices/" + device, key, Now() + ttl);
  }
  Reason Refusal(const AccessRequest& request, const std::string& token) const {
    try {
      (void)sas_.Authorize(request, token);
    } catch (const Error& e) {
      return e.reason();
    }
    ADD_FAILURE() << "allowed: " << token;
    return Reason::kServerError;
  }

  testing::FakeClock clock_;
  MemoryCredentials creds_;
  SasAuthorizer sas_;
  const AccessRequest registry_read_{Permission::kRegistryRead, std::nullopt};
  const AccessRequest registry_write_{Permission::kRegistryWrite, std::nullopt};
  const AccessRequest owner_{Permission::kHubOwner, std::nullopt};
  const AccessRequest as_a_{Permission::kDeviceConnect, std::string("dev-A")};
};

TEST_F(AuthorizerTest, OwnerTokensWorkWithEitherKey) {
  for (const char* key : {kOwnerPrimary, kOwnerSecondary}) {
    const Caller c = sas_.Authorize(owner_, PolicyToken(kHub, key, "iothubowner"));
    EXPECT_EQ(c.kind, Caller::Kind::kPolicy);
    EXPECT_EQ(c.principal, "iothubowner");
  }
}

TEST_F(AuthorizerTest, HealthNeedsNoToken) {
  EXPECT_EQ(sas_.Authorize({Permission::kNone, std::nullopt}, "").kind, Caller::Kind::kAnonymous);
}

TEST_F(AuthorizerTest, MissingMalformedExpiredForgedAndUnknownAreUnauthenticated) {
  EXPECT_EQ(Refusal(registry_read_, ""), Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(Refusal(registry_read_, "SharedAccessSignature sr=x"),
            Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(Refusal(registry_read_, PolicyToken(kHub, kOwnerPrimary, "iothubowner", -61)),
            Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(Refusal(registry_read_, PolicyToken(kHub, kReaderKey, "iothubowner")),
            Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(Refusal(registry_read_, PolicyToken(kHub, kOwnerPrimary, "nobody")),
            Reason::kIotHubUnauthorizedAccess);
  // A signature with one character changed.
  std::string token = PolicyToken(kHub, kOwnerPrimary, "iothubowner");
  const auto sig = token.find("sig=") + 4;
  token[sig] = token[sig] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Refusal(registry_read_, token), Reason::kIotHubUnauthorizedAccess);
}

TEST_F(AuthorizerTest, ExpiryAllowsTheClockSkewOnly) {
  EXPECT_NO_THROW(
      (void)sas_.Authorize(registry_read_, PolicyToken(kHub, kOwnerPrimary, "iothubowner", -59)));
  EXPECT_EQ(Refusal(registry_read_, PolicyToken(kHub, kOwnerPrimary, "iothubowner", -61)),
            Reason::kIotHubUnauthorizedAccess);
}

TEST_F(AuthorizerTest, WrongScopeIsUnauthenticated) {
  EXPECT_EQ(Refusal(registry_read_, PolicyToken("other.hub", kOwnerPrimary, "iothubowner")),
            Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(
      Refusal(registry_read_, PolicyToken("hub.example/devices", kOwnerPrimary, "iothubowner")),
      Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(Refusal(as_a_, PolicyToken("hub.example/devices/dev-B", kOwnerPrimary, "iothubowner")),
            Reason::kIotHubUnauthorizedAccess);
}

TEST_F(AuthorizerTest, APolicyWithoutThePermissionIsDenied) {
  const std::string reader = PolicyToken(kHub, kReaderKey, "reader");
  EXPECT_EQ(sas_.Authorize(registry_read_, reader).principal, "reader");
  EXPECT_EQ(Refusal(registry_write_, reader), Reason::kPermissionDenied);
  EXPECT_EQ(Refusal(owner_, reader), Reason::kPermissionDenied);
  EXPECT_EQ(Refusal(as_a_, PolicyToken(kHub, kReaderKey, "reader")), Reason::kPermissionDenied);
}

TEST_F(AuthorizerTest, DeviceKeysActOnlyForTheirDevice) {
  for (const char* key : {kDeviceA1, kDeviceA2}) {
    const Caller c = sas_.Authorize(as_a_, DeviceToken("dev-A", key));
    EXPECT_EQ(c.kind, Caller::Kind::kDevice);
    EXPECT_EQ(c.device_id, "dev-A");
  }
  // B's token (and B's key over A's resource) cannot act as A.
  EXPECT_EQ(Refusal(as_a_, DeviceToken("dev-B", kDeviceB)), Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(Refusal(as_a_, DeviceToken("dev-A", kDeviceB)), Reason::kIotHubUnauthorizedAccess);
  // A device key grants nothing on service or registry methods.
  EXPECT_EQ(Refusal(registry_read_, DeviceToken("dev-A", kDeviceA1)), Reason::kPermissionDenied);
  EXPECT_EQ(Refusal(registry_read_, DeviceToken("dev-A", kDeviceB)),
            Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(Refusal(as_a_, DeviceToken("ghost", kDeviceA1)), Reason::kIotHubUnauthorizedAccess);
}

TEST_F(AuthorizerTest, PoliciesWithDeviceConnectActForAnyDeviceFromHubOrGatewayScope) {
  EXPECT_EQ(sas_.Authorize(as_a_, PolicyToken(kHub, kReaderKey, "gateway")).device_id, "dev-A");
  EXPECT_EQ(
      sas_.Authorize(as_a_, PolicyToken("hub.example/devices", kReaderKey, "gateway")).principal,
      "gateway");
  EXPECT_EQ(Refusal(as_a_, PolicyToken("hub.example/devicesx", kReaderKey, "gateway")),
            Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(Refusal({Permission::kDeviceConnect, std::string("ghost")},
                    PolicyToken(kHub, kReaderKey, "gateway")),
            Reason::kDeviceNotFound);
}

TEST_F(AuthorizerTest, ADisabledDeviceIsRefused) {
  creds_.devices["dev-A"].enabled = false;
  EXPECT_EQ(Refusal(as_a_, DeviceToken("dev-A", kDeviceA1)), Reason::kIotHubUnauthorizedAccess);
  EXPECT_EQ(Refusal(as_a_, PolicyToken(kHub, kReaderKey, "gateway")), Reason::kPermissionDenied);
}

TEST_F(AuthorizerTest, RotatedKeysStopWorking) {
  const std::string old_token = PolicyToken(kHub, kOwnerPrimary, "iothubowner");
  creds_.policies["iothubowner"].primary_key = kReaderKey;
  EXPECT_EQ(Refusal(owner_, old_token), Reason::kIotHubUnauthorizedAccess);
  EXPECT_NO_THROW((void)sas_.Authorize(owner_, PolicyToken(kHub, kOwnerSecondary, "iothubowner")));
}

}  // namespace
}  // namespace ferry::auth
