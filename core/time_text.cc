#include "core/time_text.h"

#include <charconv>
#include <chrono>
#include <cstdint>
#include <ctime>

#include <fmt/format.h>

namespace ferry {
namespace {

std::optional<std::int64_t> ParseInt(std::string_view text) {
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::string FormatTime(TimePoint t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ((ms % 1000) + 1000) % 1000);
}

std::optional<TimePoint> ParseTime(std::string_view text) {
  if (const auto ms = ParseInt(text)) {
    // TimePoint holds 64-bit nanoseconds: keep well inside them.
    constexpr std::int64_t kLimitMs = 9'000'000'000'000;  // about the year 2255
    if (*ms <= -kLimitMs || *ms >= kLimitMs) {
      return std::nullopt;
    }
    return TimePoint(
        std::chrono::duration_cast<TimePoint::duration>(std::chrono::milliseconds(*ms)));
  }
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)
  auto num = [&](std::size_t pos, std::size_t len) -> std::optional<int> {
    if (pos + len > text.size()) return std::nullopt;
    int v = 0;
    const auto [p, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, v);
    if (ec != std::errc() || p != text.data() + pos + len) return std::nullopt;
    return v;
  };
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != ' ') || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  const auto year = num(0, 4), month = num(5, 2), day = num(8, 2), hour = num(11, 2),
             minute = num(14, 2), second = num(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || *year < 1678 || *year > 2261 ||
      *month < 1 || *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 ||
      *second > 60) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::int64_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::int64_t scale = 100000000;
    const std::size_t start = pos;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      nanos += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int offset_minutes = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos + 6 == text.size() && (text[pos] == '+' || text[pos] == '-') &&
             text[pos + 3] == ':') {
    const auto oh = num(pos + 1, 2), om = num(pos + 4, 2);
    if (!oh || !om) return std::nullopt;
    offset_minutes = (*oh * 60 + *om) * (text[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(*year), std::chrono::month(*month),
                                        std::chrono::day(*day)};
  if (!ymd.ok()) return std::nullopt;
  const auto days = std::chrono::sys_days(ymd);
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
      days.time_since_epoch() + std::chrono::hours(*hour) +
      std::chrono::minutes(*minute - offset_minutes) + std::chrono::seconds(*second) +
      std::chrono::nanoseconds(nanos)));
}

}  // namespace ferry
