#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ferry::auth {

// IoT Hub's connection strings:
//   HostName=…;SharedAccessKeyName=…;SharedAccessKey=…   (a policy)
//   HostName=…;DeviceId=…;SharedAccessKey=…              (a device)
struct ConnectionString {
  std::string host_name;
  std::optional<std::string> key_name;   // policy
  std::optional<std::string> device_id;  // device
  std::string key;

  // The resource a token signed with this key is scoped to by default: the
  // hub for a policy, {hub}/devices/{id} for a device.
  [[nodiscard]] std::string Resource() const;
  [[nodiscard]] std::string ToString() const;
  // A SharedAccessSignature value valid until `expiry` (Unix seconds).
  [[nodiscard]] std::string Token(std::int64_t expiry) const;
};

// Throws ferry::Error(kArgumentInvalid) naming what is missing or wrong.
[[nodiscard]] ConnectionString ParseConnectionString(std::string_view text);

}  // namespace ferry::auth
