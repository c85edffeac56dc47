#include "core/auth/sas.h"

#include <gtest/gtest.h>

#include "core/auth/connection_string.h"
#include "core/auth/permission.h"
#include "core/error.h"

namespace ferry::auth {
namespace {

constexpr char kKey[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

Reason ReasonOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.reason();
  }
  ADD_FAILURE() << "no error thrown";
  return Reason::kServerError;
}

TEST(Sas, SignMatchesIotHubsAlgorithm) {
  // Computed with the Python sample of IoT Hub's SAS documentation
  // (quote_plus of the lower-case URI, HMAC-SHA256 with the decoded key).
  EXPECT_EQ(Sign("myhub.azure-devices.net/devices/device-1", 1900000000, kKey),
            "dxhBpw+dBtPu29zbXhq9jN2BQOsSt6EctKZ7gdAgYE0=");
  EXPECT_EQ(Sign("MyHub.azure-devices.net/devices/DEVICE-1", 1900000000, kKey),
            "dxhBpw+dBtPu29zbXhq9jN2BQOsSt6EctKZ7gdAgYE0=");
}

TEST(Sas, AcceptsATokenMadeByTheDocumentationSample) {
  // The documentation's sample signs sr exactly as it encodes it, case kept.
  const SasToken t = ParseSasToken(
      "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2FDevice-1&sig=%2FgiIpO3WdzB%2F2"
      "gkoA3X%2B9zCsmsxNWHQSMM1UuqEKOPM%3D&se=1900000000&skn=iothubowner");
  EXPECT_EQ(t.resource, "myhub.azure-devices.net/devices/device-1");
  EXPECT_EQ(t.expiry, 1900000000);
  EXPECT_EQ(t.key_name, "iothubowner");
  EXPECT_TRUE(SignedWith(t, kKey));
  EXPECT_FALSE(SignedWith(t, "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
}

TEST(Sas, MadeTokensRoundTripInAnyFieldOrder) {
  const std::string token = MakeSasToken("Hub.Example/devices/a+b", kKey, 1900000000, "svc");
  const SasToken t = ParseSasToken(token);
  EXPECT_EQ(t.resource, "hub.example/devices/a+b");
  EXPECT_TRUE(SignedWith(t, kKey));
  const SasToken reordered =
      ParseSasToken("SharedAccessSignature se=1900000000&skn=svc&sig=" +
                    UrlEncode(Sign("hub.example/devices/a+b", 1900000000, kKey)) +
                    "&sr=" + UrlEncode("hub.example/devices/a+b"));
  EXPECT_TRUE(SignedWith(reordered, kKey));
}

TEST(Sas, AChangedExpiryOrResourceBreaksTheSignature) {
  SasToken t = ParseSasToken(MakeSasToken("hub/devices/a", kKey, 1900000000));
  t.expiry += 1;
  EXPECT_FALSE(SignedWith(t, kKey));
  SasToken u = ParseSasToken(MakeSasToken("hub/devices/a", kKey, 1900000000));
  u.resource = "hub/devices/b";
  u.raw_resource = UrlEncode(u.resource);
  EXPECT_FALSE(SignedWith(u, kKey));
}

TEST(Sas, MalformedTokensAreUnauthorized) {
  for (const std::string& bad : std::vector<std::string>{
           "", "Bearer abc", "SharedAccessSignature ", "SharedAccessSignature sr=a&sig=b",
           "SharedAccessSignature sr=a&sig=b&se=soon", "SharedAccessSignature sr=a&sig=b&se=1&se=2",
           "SharedAccessSignature sr=a&sig=b&se=1&what=x",
           "SharedAccessSignature sr=%zz&sig=b&se=1", "SharedAccessSignature sr=a&sig=b&se=-5",
           "SharedAccessSignature sr",
           // Found by fuzz/credentials_fuzz.cc: an sr of
           // only slashes names no hub (it parsed, and
           // covered nothing, not even itself).
           "SharedAccessSignature sr=//&sig=b&se=1", "SharedAccessSignature sr=%2Fhub&sig=b&se=1",
           // "%-1" passed from_chars as hex -1.
           "SharedAccessSignature sr=a%-1&sig=b&se=1",
           // %00: a NUL would cut the device or policy
           // name at a database lookup.
           "SharedAccessSignature sr=hub/devices/dev1%00x&sig=b&se=1",
           "SharedAccessSignature sr=hub&sig=b&se=1&skn=owner%00x"}) {
    EXPECT_EQ(ReasonOf([&] { (void)ParseSasToken(bad); }), Reason::kIotHubUnauthorizedAccess)
        << bad;
  }
}

TEST(Sas, ResourcesMatchByWholeSegmentsCaseInsensitively) {
  EXPECT_TRUE(ResourceCovers("hub", "hub"));
  EXPECT_TRUE(ResourceCovers("hub", "hub/devices/d1"));
  EXPECT_TRUE(ResourceCovers("hub/devices", "hub/devices/d1"));
  EXPECT_TRUE(ResourceCovers("HUB/Devices/D1", "hub/devices/d1"));
  EXPECT_TRUE(ResourceCovers("hub/devices/d1/", "hub/devices/d1"));
  EXPECT_FALSE(ResourceCovers("hub/devices/d1", "hub/devices/d10"));
  EXPECT_FALSE(ResourceCovers("hub/dev", "hub/devices/d1"));
  EXPECT_FALSE(ResourceCovers("hub/devices/d1", "hub/devices"));
  EXPECT_FALSE(ResourceCovers("hub/devices/d1", "hub"));
  EXPECT_FALSE(ResourceCovers("other", "hub"));
  EXPECT_FALSE(ResourceCovers("hu", "hub"));
  EXPECT_FALSE(ResourceCovers("", "hub"));
}

TEST(Sas, UrlEncodingRoundTrips) {
  const std::string id = "a-._~!#$%&'()*+,=?@ b";
  EXPECT_EQ(UrlDecode(UrlEncode(id)), id);
  EXPECT_EQ(UrlEncode("a/b c"), "a%2Fb%20c");
  EXPECT_EQ(UrlDecode("a+b%2f"), "a b/");
}

TEST(ConnectionStrings, ParseBothFormsAndSignTokens) {
  const auto policy = ParseConnectionString(
      std::string("HostName=Hub.Example;SharedAccessKeyName=iothubowner;SharedAccessKey=") + kKey);
  EXPECT_EQ(policy.host_name, "hub.example");
  EXPECT_EQ(policy.key_name, "iothubowner");
  EXPECT_EQ(policy.Resource(), "hub.example");
  const SasToken t = ParseSasToken(policy.Token(1900000000));
  EXPECT_EQ(t.key_name, "iothubowner");
  EXPECT_TRUE(SignedWith(t, kKey));

  const auto device =
      ParseConnectionString(std::string("HostName=hub;DeviceId=Dev-7;SharedAccessKey=") + kKey);
  EXPECT_EQ(device.Resource(), "hub/devices/Dev-7");
  EXPECT_FALSE(ParseSasToken(device.Token(1900000000)).key_name.has_value());
  EXPECT_EQ(ParseConnectionString(device.ToString()).ToString(), device.ToString());
}

TEST(ConnectionStrings, BadOnesAreArgumentInvalid) {
  for (const std::string& bad :
       std::vector<std::string>{"", "HostName=h", "HostName=h;SharedAccessKey=AAAA",
                                "HostName=h;DeviceId=d;SharedAccessKeyName=p;SharedAccessKey=AAAA",
                                "HostName=h;DeviceId=d;SharedAccessKey=not-base64!",
                                "HostName=h;Foo=1;DeviceId=d;SharedAccessKey=AAAA", "junk"}) {
    EXPECT_EQ(ReasonOf([&] { (void)ParseConnectionString(bad); }), Reason::kArgumentInvalid) << bad;
  }
}

TEST(Permissions, WriteImpliesReadAndOwnerNeedsAllFour) {
  PermissionSet write;
  write.Add(Permission::kRegistryWrite);
  EXPECT_TRUE(write.Satisfies(Permission::kRegistryRead));
  EXPECT_TRUE(write.Satisfies(Permission::kRegistryWrite));
  EXPECT_FALSE(write.Satisfies(Permission::kServiceConnect));
  EXPECT_FALSE(write.Satisfies(Permission::kHubOwner));
  PermissionSet three = PermissionSet::All();
  three = PermissionSet();
  three.Add(Permission::kRegistryRead);
  three.Add(Permission::kRegistryWrite);
  three.Add(Permission::kServiceConnect);
  EXPECT_FALSE(three.Satisfies(Permission::kHubOwner));
  EXPECT_TRUE(PermissionSet::All().Satisfies(Permission::kHubOwner));
  EXPECT_TRUE(PermissionSet().Satisfies(Permission::kNone));
  EXPECT_EQ(ParsePermission("ServiceConnect"), Permission::kServiceConnect);
  EXPECT_FALSE(ParsePermission("HubOwner").has_value());
  EXPECT_FALSE(ParsePermission("serviceconnect").has_value());
}

}  // namespace
}  // namespace ferry::auth
