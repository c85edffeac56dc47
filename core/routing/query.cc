#include "core/routing/query.h"

#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/routing/query_ast.h"
#include "core/routing/query_eval.h"
#include "core/routing/query_lexer.h"
#include "core/routing/query_message.h"
#include "core/routing/query_parser.h"
#include "core/routing/query_text.h"

// The parts of the language, each in its own file (internal to
// core/routing): query_text (ASCII case, UTF-8), query_ast (the syntax tree
// and values), query_functions (the built-in functions), query_lexer,
// query_parser, query_message (what a condition reads of a message) and
// query_eval.

namespace ferry::routing {

std::string ParseError::ToString() const {
  return fmt::format("position {}: {}", position, message);
}

Evaluation::Evaluation(const QueryInput& input)
    : cache_(std::make_unique<internal::MessageCache>(input)) {}

Evaluation::~Evaluation() = default;

Query::Query(std::string text, std::shared_ptr<const internal::Node> root)
    : text_(std::move(text)), root_(std::move(root)) {}

std::variant<Query, ParseError> Query::Parse(std::string_view condition) {
  try {
    std::vector<internal::Token> tokens = internal::Lex(condition);
    if (tokens.size() == 1) return Query(std::string(condition), nullptr);  // blank
    std::shared_ptr<const internal::Node> root =
        internal::ParseTokens(condition, std::move(tokens));
    return Query(std::string(condition), std::move(root));
  } catch (const internal::Failure& f) {
    return ParseError{internal::CharCount(condition.substr(0, f.offset)) + 1, f.message};
  }
}

Outcome Query::Evaluate(Evaluation& message) const {
  if (root_ == nullptr) return Outcome::kTrue;
  const internal::Value v = internal::Eval(*message.cache_, *root_);
  if (v.kind != internal::Value::Kind::kBool) return Outcome::kUndefined;
  return v.boolean ? Outcome::kTrue : Outcome::kFalse;
}

bool Query::Matches(Evaluation& message) const {
  return Evaluate(message) == Outcome::kTrue;
}

bool Query::Matches(const QueryInput& input) const {
  Evaluation message(input);
  return Matches(message);
}

}  // namespace ferry::routing
