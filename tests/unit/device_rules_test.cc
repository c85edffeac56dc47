#include "services/registry/device_rules.h"

#include <set>

#include <gtest/gtest.h>

#include "core/error.h"

namespace ferry::registry {
namespace {

Reason ReasonOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.reason();
  }
  ADD_FAILURE() << "no error thrown";
  return Reason::kServerError;
}

TEST(DeviceRules, AcceptsEveryAllowedCharacter) {
  EXPECT_NO_THROW(ValidateDeviceId("thermostat-7"));
  EXPECT_NO_THROW(ValidateDeviceId("AZaz09-.+%_#*?!(),=@$'"));
  EXPECT_NO_THROW(ValidateDeviceId(std::string(128, 'a')));
}

TEST(DeviceRules, RefusesBadIdsAsArgumentInvalid) {
  EXPECT_EQ(ReasonOf([] { ValidateDeviceId(""); }), Reason::kArgumentInvalid);
  EXPECT_EQ(ReasonOf([] { ValidateDeviceId(std::string(129, 'a')); }), Reason::kArgumentInvalid);
  for (const std::string& bad : std::vector<std::string>{
           "a b", "a/b", "a\\b", "a:b", "a;b", "a\"b", "a<b", "a&b", "a~b", "a^b", "a|b", "a{b",
           "a[b", "\xc3\xa9t\xc3\xa9", std::string("a\0b", 3)}) {
    EXPECT_EQ(ReasonOf([&] { ValidateDeviceId(bad); }), Reason::kArgumentInvalid) << bad;
  }
}

TEST(DeviceRules, ExactlyTheDocumentedCharacterSetIsAllowed) {
  std::string allowed;
  for (int c = 0; c < 256; ++c) {
    if (IsDeviceIdChar(static_cast<char>(c))) allowed += static_cast<char>(c);
  }
  EXPECT_EQ(allowed,
            "!#$%'()*+,-.0123456789=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz");
}

TEST(DeviceRules, StatusReasonCountsCharactersNotBytes) {
  std::string reason;
  for (int i = 0; i < 128; ++i) reason += "\xc3\xa9";  // é, two bytes each
  EXPECT_NO_THROW(ValidateStatusReason(reason));
  EXPECT_EQ(ReasonOf([&] { ValidateStatusReason(reason + "x"); }), Reason::kArgumentInvalid);
}

TEST(DeviceRules, KeysMustBeBase64Of16To64Bytes) {
  EXPECT_NO_THROW(ValidateSymmetricKey(NewSymmetricKey(), "primary key"));
  EXPECT_NO_THROW(ValidateSymmetricKey("AAAAAAAAAAAAAAAAAAAAAA==", "k"));  // 16 bytes
  EXPECT_EQ(ReasonOf([] { ValidateSymmetricKey("AAAAAAAAAAAAAAAAAAAA", "k"); }),
            Reason::kArgumentInvalid);  // 15 bytes
  EXPECT_EQ(ReasonOf([] { ValidateSymmetricKey(std::string(88, 'A'), "k"); }),
            Reason::kArgumentInvalid);  // 66 bytes
  EXPECT_EQ(ReasonOf([] { ValidateSymmetricKey("not base64 at all!!!!!!!", "k"); }),
            Reason::kArgumentInvalid);
  EXPECT_EQ(ReasonOf([] { ValidateSymmetricKey("", "k"); }), Reason::kArgumentInvalid);
}

TEST(DeviceRules, GeneratedValuesAreDistinct) {
  std::set<std::string> keys, generations, etags;
  for (int i = 0; i < 1000; ++i) {
    keys.insert(NewSymmetricKey());
    generations.insert(NewGenerationId());
    etags.insert(NewEtag());
  }
  EXPECT_EQ(keys.size(), 1000u);
  EXPECT_EQ(generations.size(), 1000u);
  EXPECT_EQ(etags.size(), 1000u);
  EXPECT_EQ(NewSymmetricKey().size(), 44u);
  EXPECT_EQ(NewGenerationId().size(), 18u);
}

TEST(DeviceRules, IfMatchFollowsRfc7232) {
  EXPECT_TRUE(EtagMatches("", "abc"));
  EXPECT_TRUE(EtagMatches("*", "abc"));
  EXPECT_TRUE(EtagMatches("abc", "abc"));
  EXPECT_TRUE(EtagMatches("\"abc\"", "abc"));
  EXPECT_TRUE(EtagMatches("W/\"abc\"", "abc"));
  EXPECT_FALSE(EtagMatches("abd", "abc"));
  EXPECT_FALSE(EtagMatches("ABC", "abc"));
}

TEST(DeviceRules, PageTokensRoundTripAndRefuseForgeries) {
  EXPECT_EQ(DecodePageToken(EncodePageToken("dev-42")), "dev-42");
  EXPECT_EQ(ReasonOf([] { (void)DecodePageToken("%%%"); }), Reason::kArgumentInvalid);
}

}  // namespace
}  // namespace ferry::registry
