#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace ferry::pg {

// Times cross the SQL boundary as microseconds since the Unix epoch (exact,
// unlike to_timestamp(double)). `TimestampFromMicros("$3")` is the SQL for a
// timestamptz parameter; `MicrosOf("created_at")` reads one back as bigint.
[[nodiscard]] inline std::string TimestampFromMicros(std::string_view placeholder) {
  return fmt::format("('epoch'::timestamptz + ({} * interval '1 microsecond'))", placeholder);
}
[[nodiscard]] inline std::string MicrosOf(std::string_view column) {
  return fmt::format("(extract(epoch from {}) * 1000000)::bigint", column);
}

}  // namespace ferry::pg
