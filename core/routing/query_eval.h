#pragma once

#include "core/routing/query_ast.h"
#include "core/routing/query_message.h"

// The routing query language's evaluator: a syntax tree's value for one
// message, with three-valued logic; never fails.
// Internal to core/routing: part of query.cc's implementation, not of the
// interface in query.h. Namespace ferry::routing::internal.

namespace ferry::routing::internal {

// The value of `root` for the message in `cache`.
Value Eval(MessageCache& cache, const Node& root);

}  // namespace ferry::routing::internal
