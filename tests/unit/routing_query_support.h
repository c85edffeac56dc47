#pragma once
// What the routing query tests share: a telemetry message and shorthands to
// evaluate or fail to parse a condition.

#include <string>
#include <string_view>
#include <variant>

#include <gtest/gtest.h>

#include "core/routing/query.h"

namespace ferry::routing::test {

// A telemetry message as the d2c decoder produces it: wire-named system
// properties, string application properties, a UTF-8 JSON body.
inline QueryInput Telemetry() {
  QueryInput in;
  in.system_properties = {
      {"content-type", "application/json"},
      {"content-encoding", "utf-8"},
      {"message-id", "m-1"},
      {"correlation-id", "c-1"},
      {"iothub-connection-device-id", "thermostat-7"},
      {"iothub-enqueuedtime", "2026-11-26T10:00:00.250Z"},
      {"dt-dataschema", "dtmi:com:example;1"},
  };
  in.application_properties = {
      {"processingPath", "hot"},
      {"temperature", "21.5"},
      {"iothub-message-schema", "deviceLifecycleNotification"},
      {"$custom", "app-dollar"},
      {"empty", ""},
  };
  in.body = R"({
    "temp": 30,
    "humidity": 55.5,
    "name": "Room 1",
    "on": true,
    "nothing": null,
    "nested": {"a": {"b": "deep"}},
    "Weather": {"HistoricalData": [{"Month": "Feb", "Temp": 3}, {"Month": "Mar", "Temp": 9}]},
    "matrix": [[1, 2], [3, 4]],
    "x-y": 7,
    "Case": "upper"
  })";
  return in;
}

inline Outcome Eval(std::string_view condition, const QueryInput& in = Telemetry()) {
  auto parsed = Query::Parse(condition);
  if (const auto* e = std::get_if<ParseError>(&parsed)) {
    ADD_FAILURE() << "'" << condition << "' does not parse: " << e->ToString();
    return Outcome::kUndefined;
  }
  Evaluation message(in);
  return std::get<Query>(parsed).Evaluate(message);
}

inline bool Match(std::string_view condition, const QueryInput& in = Telemetry()) {
  return Eval(condition, in) == Outcome::kTrue;
}

inline ParseError Error(std::string_view condition) {
  auto parsed = Query::Parse(condition);
  if (const auto* e = std::get_if<ParseError>(&parsed)) return *e;
  ADD_FAILURE() << "'" << condition << "' parsed but should not";
  return {};
}

}  // namespace ferry::routing::test
