#include "core/device_id.h"

#include <cctype>

#include <fmt/format.h>

#include "core/error.h"

namespace ferry {

bool IsDeviceIdChar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 0x80) {
    return true;
  }
  constexpr std::string_view kSpecial = "-.+%_#*?!(),=@$'";
  return kSpecial.find(c) != std::string_view::npos;
}

void ValidateDeviceId(std::string_view id) {
  if (id.empty()) throw Error(Reason::kArgumentInvalid, "device id is required");
  if (id.size() > kMaxDeviceIdLength) {
    throw Error(Reason::kArgumentInvalid,
                fmt::format("device id is {} characters long; at most {} are allowed", id.size(),
                            kMaxDeviceIdLength));
  }
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (!IsDeviceIdChar(id[i])) {
      throw Error(Reason::kArgumentInvalid,
                  fmt::format("device id has a character not allowed at position {} (allowed: "
                              "ASCII letters, digits and - . + % _ # * ? ! ( ) , = @ $ ')",
                              i));
    }
  }
}

}  // namespace ferry
