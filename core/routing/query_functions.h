#pragma once

#include <cstddef>
#include <limits>
#include <string_view>

#include "core/routing/query_ast.h"

// The routing query language's built-in functions by name, with the number
// of arguments each takes (the parser checks calls against it).
// Internal to core/routing: part of query.cc's implementation, not of the
// interface in query.h. Namespace ferry::routing::internal.

namespace ferry::routing::internal {

struct FunctionInfo {
  std::string_view name;
  Function function;
  std::size_t min_args;
  std::size_t max_args;
};

constexpr std::size_t kVariadic = std::numeric_limits<std::size_t>::max();

// The function named `name` (ASCII case ignored), or null.
const FunctionInfo* FindFunction(std::string_view name);

}  // namespace ferry::routing::internal
