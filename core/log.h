#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

namespace ferry::log {

enum class Format { kJson, kText };

// Sets up the process's logging: every logger writes one line per record to
// stdout, as a JSON object {"ts","level","logger","msg"} (kJson) or as plain
// text. Call once, before other threads log. Throws std::invalid_argument on
// an unknown level name.
void Init(std::string_view level, Format format);

// The logger of one module ("registry", "pg", "server", ...). Messages read
// `what happened key=value key="quoted id"`. Thread-safe.
[[nodiscard]] std::shared_ptr<spdlog::logger> Get(const std::string& name);

// Exposed for tests: renders one record the way kJson does.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override;
};

}  // namespace ferry::log
