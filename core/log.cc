#include "core/log.h"

#include <chrono>
#include <mutex>

#include <fmt/chrono.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>

namespace ferry::log {
namespace {

std::mutex g_mutex;
spdlog::sink_ptr g_sink;
spdlog::level::level_enum g_level = spdlog::level::info;

spdlog::sink_ptr Sink() {
  std::lock_guard lock(g_mutex);
  if (!g_sink) {
    g_sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    g_sink->set_formatter(std::make_unique<JsonFormatter>());
  }
  return g_sink;
}

}  // namespace

void JsonFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(msg.time.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(micros / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  nlohmann::json line = {
      {"ts", fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:06d}Z", tm, micros % 1000000)},
      {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                            spdlog::level::to_string_view(msg.level).size())},
      {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
      {"msg", std::string(msg.payload.data(), msg.payload.size())},
  };
  // Invalid UTF-8 in a message (a device id from the wire, say) must not
  // throw from the logger: replace it.
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  dest.append(text.data(), text.data() + text.size());
  dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> JsonFormatter::clone() const {
  return std::make_unique<JsonFormatter>();
}

void Init(std::string_view level, Format format) {
  const auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + std::string(level) +
                                "' (trace, debug, info, warn, error, critical, off)");
  }
  auto sink = Sink();
  if (format == Format::kText) {
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%fZ %l %n: %v", spdlog::pattern_time_type::utc));
  } else {
    sink->set_formatter(std::make_unique<JsonFormatter>());
  }
  std::lock_guard lock(g_mutex);
  g_level = parsed;
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(parsed); });
}

std::shared_ptr<spdlog::logger> Get(const std::string& name) {
  auto sink = Sink();
  std::lock_guard lock(g_mutex);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_level(g_level);
  logger->flush_on(spdlog::level::trace);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace ferry::log
