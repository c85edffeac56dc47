#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/routing/query_ast.h"

// The routing query language's lexer: a condition's text as tokens.
// Internal to core/routing: part of query.cc's implementation, not of the
// interface in query.h. Namespace ferry::routing::internal.

namespace ferry::routing::internal {

// Why a condition does not parse (the lexer and the parser throw it).
struct Failure {
  std::size_t offset;  // byte offset into the condition
  std::string message;
};

enum class Tok {
  kEnd,
  kNumber,
  kString,
  kName,
  kLParen,
  kRParen,
  kComma,
  kEq,
  kNe,
  kLt,
  kGt,
  kLe,
  kGe,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
};

struct Token {
  Tok kind = Tok::kEnd;
  std::size_t offset = 0;
  std::size_t length = 0;
  double number = 0;
  std::string text;                   // string literal value, or the name as written
  std::vector<PathSegment> segments;  // names: dot/index path after the first segment
  std::size_t index_offset = 0;       // names: offset of the first `[`, if any
};

// The tokens of `condition`, the last one kEnd. Throws Failure.
std::vector<Token> Lex(std::string_view condition);

}  // namespace ferry::routing::internal
