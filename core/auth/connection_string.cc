#include "core/auth/connection_string.h"

#include "core/auth/authorizer.h"
#include "core/auth/base64.h"
#include "core/auth/sas.h"
#include "core/error.h"

namespace ferry::auth {

std::string ConnectionString::Resource() const {
  return device_id ? DeviceResource(host_name, *device_id) : host_name;
}

std::string ConnectionString::ToString() const {
  std::string out = "HostName=" + host_name;
  if (key_name) out += ";SharedAccessKeyName=" + *key_name;
  if (device_id) out += ";DeviceId=" + *device_id;
  return out + ";SharedAccessKey=" + key;
}

std::string ConnectionString::Token(std::int64_t expiry) const {
  if (key_name) return MakeSasToken(Resource(), key, expiry, *key_name);
  return MakeSasToken(Resource(), key, expiry);
}

ConnectionString ParseConnectionString(std::string_view text) {
  ConnectionString cs;
  bool have_key = false;
  while (!text.empty()) {
    const auto semi = text.find(';');
    const std::string_view part = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    if (part.empty()) continue;
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) {
      throw Error(Reason::kArgumentInvalid,
                  "connection string part without '=': " + std::string(part));
    }
    const std::string name(part.substr(0, eq));
    // Base64 keys end in '=': everything after the first '=' is the value.
    std::string value(part.substr(eq + 1));
    if (name == "HostName") {
      cs.host_name = ToLower(value);
    } else if (name == "SharedAccessKeyName") {
      cs.key_name = value;
    } else if (name == "DeviceId") {
      cs.device_id = value;
    } else if (name == "SharedAccessKey") {
      cs.key = value;
      have_key = true;
    } else {
      throw Error(Reason::kArgumentInvalid, "unknown connection string field '" + name + "'");
    }
  }
  if (cs.host_name.empty() || !have_key) {
    throw Error(Reason::kArgumentInvalid, "a connection string needs HostName and SharedAccessKey");
  }
  if (cs.key_name.has_value() == cs.device_id.has_value()) {
    throw Error(Reason::kArgumentInvalid,
                "a connection string names either SharedAccessKeyName or DeviceId");
  }
  if (!Base64Decode(cs.key)) throw Error(Reason::kArgumentInvalid, "SharedAccessKey is not base64");
  return cs;
}

}  // namespace ferry::auth
