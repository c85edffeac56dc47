#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/routing/query_ast.h"
#include "core/routing/query_lexer.h"

// The routing query language's parser: tokens to a syntax tree, by
// recursive descent.
// Internal to core/routing: part of query.cc's implementation, not of the
// interface in query.h. Namespace ferry::routing::internal.

namespace ferry::routing::internal {

// The tree of the condition `text` whose tokens (from Lex) are `tokens`.
// Throws Failure, also for conditions nested or chained too deep.
std::unique_ptr<Node> ParseTokens(std::string_view text, std::vector<Token> tokens);

}  // namespace ferry::routing::internal
