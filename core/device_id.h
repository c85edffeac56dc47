#pragma once

#include <cstddef>
#include <string_view>

namespace ferry {

// IoT Hub's device id rule, shared by the registry, C2D and D2C.
inline constexpr std::size_t kMaxDeviceIdLength = 128;

// Case-sensitive, 1 to 128 characters: ASCII alphanumerics and
// - . + % _ # * ? ! ( ) , = @ $ '
// Throws ferry::Error(kArgumentInvalid) naming the rule broken.
void ValidateDeviceId(std::string_view id);
[[nodiscard]] bool IsDeviceIdChar(char c);

}  // namespace ferry
