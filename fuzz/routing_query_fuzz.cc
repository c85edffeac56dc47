// The routing query parser and evaluator (core/routing/query.h). The input
// is a condition, then optionally a NUL byte and a message body evaluated as
// JSON. Properties: Parse never throws and reports a position inside the
// condition; a parsed query evaluates without throwing, the same way twice,
// and Matches agrees with Evaluate.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "core/routing/query.h"
#include "fuzz/fuzz_check.h"

namespace {

std::size_t CodePoints(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ferry::routing;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\0');
  const std::string_view condition = input.substr(0, split);
  const std::string_view body =
      split == std::string_view::npos ? std::string_view() : input.substr(split + 1);

  const auto parsed = Query::Parse(condition);
  if (const auto* error = std::get_if<ParseError>(&parsed)) {
    FERRY_FUZZ_CHECK(error->position >= 1 && error->position <= CodePoints(condition) + 1);
    FERRY_FUZZ_CHECK(!error->message.empty());
    return 0;
  }
  const Query& query = std::get<Query>(parsed);
  FERRY_FUZZ_CHECK(query.text() == condition);

  QueryInput message;
  message.system_properties = {{"iothub-connection-device-id", "d1"},
                               {"message-id", "m1"},
                               {"iothub-enqueuedtime", "2026-11-26T10:00:00Z"}};
  message.application_properties = {{"level", "critical"}, {"temp", "21.5"}, {"Count", "3"}};
  message.body = std::string(body);
  message.content_type = "application/json";
  message.content_encoding = "utf-8";
  message.twin = R"({"tags":{"site":"a"},"properties":{"desired":{"x":1},"reported":{"y":[1,2]}}})";

  Evaluation first(message);
  const Outcome outcome = query.Evaluate(first);
  Evaluation second(message);
  FERRY_FUZZ_CHECK(query.Evaluate(second) == outcome);
  FERRY_FUZZ_CHECK(query.Matches(message) == (outcome == Outcome::kTrue));
  return 0;
}
