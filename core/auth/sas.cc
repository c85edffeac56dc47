#include "core/auth/sas.h"

#include <cctype>
#include <charconv>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/auth/base64.h"
#include "core/error.h"

namespace ferry::auth {
namespace {

[[noreturn]] void Malformed(const std::string& what) {
  throw Error(Reason::kIotHubUnauthorizedAccess, "malformed SAS token: " + what);
}

std::string Hmac(std::string_view key, std::string_view message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

bool SignatureMatches(std::string_view string_to_sign, std::string_view key,
                      std::string_view expected_raw) {
  const std::string mac = Hmac(key, string_to_sign);
  return mac.size() == expected_raw.size() &&
         CRYPTO_memcmp(mac.data(), expected_raw.data(), mac.size()) == 0;
}

}  // namespace

std::string ToLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string UrlDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%') {
      int value = 0;
      // Two hex digits exactly (from_chars alone would take "%-1").
      if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
        Malformed("bad percent escape");
      }
      const auto [ptr, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
      if (ec != std::errc() || ptr != text.data() + i + 3) Malformed("bad percent escape");
      out += static_cast<char>(value);
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

SasToken ParseSasToken(std::string_view header) {
  constexpr std::string_view kScheme = "SharedAccessSignature ";
  header = Trim(header);
  if (header.substr(0, kScheme.size()) != kScheme) {
    Malformed("it must start with 'SharedAccessSignature '");
  }
  header.remove_prefix(kScheme.size());
  SasToken token;
  bool have_sr = false, have_sig = false, have_se = false;
  while (!header.empty()) {
    const auto amp = header.find('&');
    const std::string_view field = header.substr(0, amp);
    header = amp == std::string_view::npos ? std::string_view() : header.substr(amp + 1);
    const auto eq = field.find('=');
    if (eq == std::string_view::npos) Malformed("field without '='");
    const std::string_view name = Trim(field.substr(0, eq));
    const std::string_view value = field.substr(eq + 1);
    if (name == "sr") {
      if (have_sr) Malformed("sr given twice");
      have_sr = true;
      token.raw_resource = std::string(value);
      token.resource = ToLower(UrlDecode(value));
    } else if (name == "sig") {
      if (have_sig) Malformed("sig given twice");
      have_sig = true;
      token.signature = UrlDecode(value);
    } else if (name == "se") {
      if (have_se) Malformed("se given twice");
      have_se = true;
      const auto [ptr, ec] =
          std::from_chars(value.data(), value.data() + value.size(), token.expiry);
      if (ec != std::errc() || ptr != value.data() + value.size() || token.expiry <= 0) {
        Malformed("se is not a number of seconds");
      }
    } else if (name == "skn") {
      if (token.key_name) Malformed("skn given twice");
      token.key_name = UrlDecode(value);
    } else {
      Malformed("unknown field '" + std::string(name) + "'");
    }
  }
  if (!have_sr || !have_sig || !have_se) Malformed("sr, sig and se are required");
  if (token.resource.empty() || token.signature.empty()) Malformed("empty sr or sig");
  // %00 decodes to a NUL, which no device id or policy name holds (and a
  // database lookup would cut the name there).
  if (token.resource.find('\0') != std::string::npos ||
      (token.key_name && token.key_name->find('\0') != std::string::npos)) {
    Malformed("sr or skn holds a NUL character");
  }
  // A resource is {host}[/path]: one that starts with '/' names no hub and
  // would cover nothing.
  if (token.resource.front() == '/') Malformed("sr must start with the hub's host name");
  return token;
}

std::string Sign(std::string_view resource, std::int64_t expiry, std::string_view base64_key) {
  const auto key = Base64Decode(base64_key);
  if (!key) throw Error(Reason::kArgumentInvalid, "key is not valid base64");
  const std::string to_sign = UrlEncode(ToLower(resource)) + "\n" + std::to_string(expiry);
  return Base64Encode(Hmac(*key, to_sign));
}

std::string MakeSasToken(std::string_view resource, std::string_view base64_key,
                         std::int64_t expiry, std::optional<std::string_view> key_name) {
  // sr keeps its case (a device id in it is case-sensitive for lookup); the
  // signature is over the lower-cased form, as IoT Hub specifies.
  std::string token = "SharedAccessSignature sr=" + UrlEncode(resource) +
                      "&sig=" + UrlEncode(Sign(resource, expiry, base64_key)) +
                      "&se=" + std::to_string(expiry);
  if (key_name) token += "&skn=" + UrlEncode(*key_name);
  return token;
}

bool SignedWith(const SasToken& token, std::string_view base64_key) {
  const auto key = Base64Decode(base64_key);
  const auto sig = Base64Decode(token.signature);
  if (!key || !sig) return false;
  const std::string se = "\n" + std::to_string(token.expiry);
  // Evaluate both forms regardless of the first result: no early exit.
  const bool as_sent = SignatureMatches(token.raw_resource + se, *key, *sig);
  const bool canonical = SignatureMatches(UrlEncode(token.resource) + se, *key, *sig);
  return as_sent || canonical;
}

bool ResourceCovers(std::string_view granted, std::string_view target) {
  std::string g = ToLower(granted);
  std::string t = ToLower(target);
  while (!g.empty() && g.back() == '/') g.pop_back();
  while (!t.empty() && t.back() == '/') t.pop_back();
  if (g.empty()) return false;
  if (t.size() < g.size() || t.compare(0, g.size(), g) != 0) return false;
  return t.size() == g.size() || t[g.size()] == '/';
}

}  // namespace ferry::auth
