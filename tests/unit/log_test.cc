#include "core/log.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace ferry::log {
namespace {

std::string Render(std::string_view payload) {
  JsonFormatter f;
  spdlog::details::log_msg msg(spdlog::source_loc{}, "registry", spdlog::level::warn, payload);
  spdlog::memory_buf_t buf;
  f.format(msg, buf);
  return std::string(buf.data(), buf.size());
}

TEST(Log, OneJsonObjectPerLine) {
  const std::string line = Render("device created device=\"a\\\"b\"\nsecond line");
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["logger"], "registry");
  EXPECT_EQ(j["msg"], "device created device=\"a\\\"b\"\nsecond line");
  EXPECT_EQ(j["ts"].get<std::string>().back(), 'Z');
}

TEST(Log, InvalidUtf8DoesNotThrow) {
  const auto j = nlohmann::json::parse(Render("bad \xff\xfe bytes"));
  EXPECT_NE(j["msg"].get<std::string>().find("bad"), std::string::npos);
}

TEST(Log, UnknownLevelIsRefused) {
  EXPECT_THROW(Init("loud", Format::kJson), std::invalid_argument);
  EXPECT_NO_THROW(Init("info", Format::kJson));
}

}  // namespace
}  // namespace ferry::log
