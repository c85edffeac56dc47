// SAS tokens, connection strings, URL and base64 decoding (core/auth). The
// input is parsed as each of them. Properties: they fail only with
// ferry::Error; whatever parses survives a round trip (a token made again
// from what was parsed parses to the same fields and is signed with its key;
// a connection string printed and parsed again is the same; decoded base64
// encodes back to what decodes the same).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/auth/base64.h"
#include "core/auth/connection_string.h"
#include "core/auth/sas.h"
#include "core/error.h"
#include "fuzz/fuzz_check.h"

namespace {

constexpr std::string_view kKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

void FuzzSasToken(std::string_view text) {
  using namespace ferry::auth;
  SasToken token;
  try {
    token = ParseSasToken(text);
  } catch (const ferry::Error&) {
    return;
  }
  (void)SignedWith(token, kKey);
  (void)ResourceCovers(token.resource, token.resource + "/devices/d1");
  FERRY_FUZZ_CHECK(ResourceCovers(token.resource, token.resource));
  const std::string again = MakeSasToken(token.resource, kKey, token.expiry, token.key_name);
  const auto reparsed = ParseSasToken(again);  // must not throw
  FERRY_FUZZ_CHECK(reparsed.resource == token.resource);
  FERRY_FUZZ_CHECK(reparsed.expiry == token.expiry);
  FERRY_FUZZ_CHECK(reparsed.key_name == token.key_name);
  FERRY_FUZZ_CHECK(SignedWith(reparsed, kKey));
}

void FuzzConnectionString(std::string_view text) {
  using namespace ferry::auth;
  ConnectionString cs;
  try {
    cs = ParseConnectionString(text);
  } catch (const ferry::Error&) {
    return;
  }
  const auto again = ParseConnectionString(cs.ToString());  // must not throw
  FERRY_FUZZ_CHECK(again.host_name == cs.host_name);
  FERRY_FUZZ_CHECK(again.key_name == cs.key_name);
  FERRY_FUZZ_CHECK(again.device_id == cs.device_id);
  FERRY_FUZZ_CHECK(again.key == cs.key);
  FERRY_FUZZ_CHECK(again.Resource() == cs.Resource());
}

void FuzzCodecs(std::string_view text) {
  using namespace ferry::auth;
  try {
    const std::string decoded = UrlDecode(text);
    FERRY_FUZZ_CHECK(UrlDecode(UrlEncode(decoded)) == decoded);
  } catch (const ferry::Error&) {
  }
  if (const auto bytes = Base64Decode(text)) {
    const auto again = Base64Decode(Base64Encode(*bytes));
    FERRY_FUZZ_CHECK(again && *again == *bytes);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  FuzzSasToken(text);
  FuzzConnectionString(text);
  FuzzCodecs(text);
  return 0;
}
