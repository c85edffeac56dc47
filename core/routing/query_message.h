#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/routing/query.h"
#include "core/routing/query_ast.h"

// What a routing query reads of a message: system and application
// properties, the JSON body (the $body rule, UTF-8/16/32) and the twin.
// Internal to core/routing: part of query.cc's implementation, not of the
// interface in query.h. Namespace ferry::routing::internal.

namespace ferry::routing::internal {

class MessageCache {
 public:
  explicit MessageCache(const QueryInput& input) : input_(input) {}

  const QueryInput& input() const { return input_; }

  // The parsed body, or null when it is not JSON by the $body rule or does
  // not parse.
  const nlohmann::json* Body();
  const nlohmann::json* Twin();

 private:
  const QueryInput& input_;
  std::optional<nlohmann::json> body_;  // discarded value: not available
  std::optional<nlohmann::json> twin_;
};

// The value of `name` in `m`: an exact match, else one that differs only in
// ASCII case; null when there is none.
const std::string* FindIgnoringCase(const std::map<std::string, std::string>& m,
                                    std::string_view name);

// A system property by its wire name or the query's camelCase name
// (`contentType`, `connectionDeviceId`, ...), ASCII case ignored; null when
// the message has none.
const std::string* FindSystemProperty(const QueryInput& in, std::string_view name);

// Walks `path` from `root`. The root itself (an empty path, or one that
// starts with an index) is not addressable, as in IoT Hub.
Value Walk(const nlohmann::json* root, const std::vector<PathSegment>& path, bool ignore_case);

}  // namespace ferry::routing::internal
