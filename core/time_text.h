#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace ferry {

// RFC 3339 UTC with milliseconds ("2026-11-26T04:00:00.123Z"), the form
// Ferry writes in headers; ParseTime also takes other RFC 3339 offsets,
// fractions of any length and whole epoch milliseconds.
[[nodiscard]] std::string FormatTime(TimePoint t);
[[nodiscard]] std::optional<TimePoint> ParseTime(std::string_view text);

}  // namespace ferry
