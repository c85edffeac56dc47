#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ferry::auth {

// Standard base64 with padding (RFC 4648 §4), as IoT Hub's keys use.
[[nodiscard]] std::string Base64Encode(std::string_view bytes);
// nullopt unless `text` is strict padded standard base64.
[[nodiscard]] std::optional<std::string> Base64Decode(std::string_view text);
// `n` cryptographically random bytes.
[[nodiscard]] std::string RandomBytes(std::size_t n);

}  // namespace ferry::auth
