#include "core/routing/query_parser.h"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "core/routing/query_functions.h"
#include "core/routing/query_text.h"

namespace ferry::routing::internal {

namespace {

// Conditions nested deeper than this (parentheses, NOT, unary minus, calls)
// are refused, so a hostile condition cannot overflow the stack.
constexpr int kMaxDepth = 100;
// Trees taller than this (long operator chains) are refused, so evaluating
// and destroying them cannot overflow the stack either.
constexpr int kMaxHeight = 500;

std::string Describe(const Token& t, std::string_view text) {
  switch (t.kind) {
    case Tok::kEnd:
      return "end of condition";
    case Tok::kNumber:
      return fmt::format("number '{}'", text.substr(t.offset, t.length));
    case Tok::kString:
      return "string literal";
    case Tok::kName:
      return fmt::format("'{}'", text.substr(t.offset, t.length));
    case Tok::kLParen:
    case Tok::kRParen:
    case Tok::kComma:
    case Tok::kEq:
    case Tok::kNe:
    case Tok::kLt:
    case Tok::kGt:
    case Tok::kLe:
    case Tok::kGe:
    case Tok::kPlus:
    case Tok::kMinus:
    case Tok::kStar:
    case Tok::kSlash:
    case Tok::kPercent:
      return fmt::format("'{}'", text.substr(t.offset, t.length));
  }
  return "token";
}

class Parser {
 public:
  Parser(std::string_view text, std::vector<Token> tokens)
      : text_(text), tokens_(std::move(tokens)) {}

  std::unique_ptr<Node> Run() {
    auto root = ParseOr();
    if (Cur().kind != Tok::kEnd) {
      Fail(Cur(),
           fmt::format("unexpected {} after the end of the expression", Describe(Cur(), text_)));
    }
    return root;
  }

 private:
  const Token& Cur() const { return tokens_[pos_]; }
  const Token& Advance() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }

  [[noreturn]] void Fail(const Token& t, std::string message) {
    throw Failure{t.offset, std::move(message)};
  }

  // A bare single-segment name equal to `keyword`, case-insensitively.
  bool IsKeyword(const Token& t, std::string_view keyword) const {
    return t.kind == Tok::kName && t.segments.empty() && IEquals(t.text, keyword);
  }

  void Enter(const Token& at) {
    if (++depth_ > kMaxDepth)
      Fail(at, fmt::format("condition is nested more than {} deep", kMaxDepth));
  }

  // Sets n's height from its children; refuses trees that are too tall.
  std::unique_ptr<Node> Finish(std::unique_ptr<Node> n, std::size_t offset) {
    for (const auto& c : n->children) n->height = std::max(n->height, c->height + 1);
    if (n->height > kMaxHeight) {
      throw Failure{offset,
                    fmt::format("condition is too complex (more than {} levels)", kMaxHeight)};
    }
    return n;
  }

  std::unique_ptr<Node> Binary(BinaryOp op, std::size_t offset, std::unique_ptr<Node> l,
                               std::unique_ptr<Node> r) {
    auto n = std::make_unique<Node>();
    n->kind = Node::Kind::kBinary;
    n->op = op;
    n->children.push_back(std::move(l));
    n->children.push_back(std::move(r));
    return Finish(std::move(n), offset);
  }

  std::unique_ptr<Node> Unary(Node::Kind kind, std::size_t offset, std::unique_ptr<Node> child) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->children.push_back(std::move(child));
    return Finish(std::move(n), offset);
  }

  static std::optional<BinaryOp> ComparisonOp(Tok t) {
    if (t == Tok::kEq) return BinaryOp::kEq;
    if (t == Tok::kNe) return BinaryOp::kNe;
    if (t == Tok::kLt) return BinaryOp::kLt;
    if (t == Tok::kGt) return BinaryOp::kGt;
    if (t == Tok::kLe) return BinaryOp::kLe;
    if (t == Tok::kGe) return BinaryOp::kGe;
    return std::nullopt;
  }

  static std::optional<BinaryOp> AdditiveOp(Tok t) {
    if (t == Tok::kPlus) return BinaryOp::kAdd;
    if (t == Tok::kMinus) return BinaryOp::kSub;
    return std::nullopt;
  }

  static std::optional<BinaryOp> MultiplicativeOp(Tok t) {
    if (t == Tok::kStar) return BinaryOp::kMul;
    if (t == Tok::kSlash) return BinaryOp::kDiv;
    if (t == Tok::kPercent) return BinaryOp::kMod;
    return std::nullopt;
  }

  std::unique_ptr<Node> ParseOr() {
    auto left = ParseAnd();
    while (IsKeyword(Cur(), "OR")) {
      const std::size_t at = Advance().offset;
      left = Binary(BinaryOp::kOr, at, std::move(left), ParseAnd());
    }
    return left;
  }

  std::unique_ptr<Node> ParseAnd() {
    auto left = ParseNot();
    while (IsKeyword(Cur(), "AND")) {
      const std::size_t at = Advance().offset;
      left = Binary(BinaryOp::kAnd, at, std::move(left), ParseNot());
    }
    return left;
  }

  std::unique_ptr<Node> ParseNot() {
    if (IsKeyword(Cur(), "NOT")) {
      const Token& at = Advance();
      Enter(at);
      auto n = Unary(Node::Kind::kNot, at.offset, ParseNot());
      --depth_;
      return n;
    }
    return ParseComparison();
  }

  std::unique_ptr<Node> ParseComparison() {
    auto left = ParseAdditive();
    while (const auto op = ComparisonOp(Cur().kind)) {
      const std::size_t at = Advance().offset;
      left = Binary(*op, at, std::move(left), ParseAdditive());
    }
    return left;
  }

  std::unique_ptr<Node> ParseAdditive() {
    auto left = ParseMultiplicative();
    while (const auto op = AdditiveOp(Cur().kind)) {
      const std::size_t at = Advance().offset;
      left = Binary(*op, at, std::move(left), ParseMultiplicative());
    }
    return left;
  }

  std::unique_ptr<Node> ParseMultiplicative() {
    auto left = ParseUnary();
    while (const auto op = MultiplicativeOp(Cur().kind)) {
      const std::size_t at = Advance().offset;
      left = Binary(*op, at, std::move(left), ParseUnary());
    }
    return left;
  }

  std::unique_ptr<Node> ParseUnary() {
    if (Cur().kind == Tok::kMinus || Cur().kind == Tok::kPlus) {
      const auto kind = Cur().kind == Tok::kMinus ? Node::Kind::kNegate : Node::Kind::kUnaryPlus;
      const Token& at = Advance();
      Enter(at);
      auto n = Unary(kind, at.offset, ParseUnary());
      --depth_;
      return n;
    }
    return ParsePrimary();
  }

  std::unique_ptr<Node> Literal(Value v) {
    auto n = std::make_unique<Node>();
    n->kind = Node::Kind::kLiteral;
    n->literal = std::move(v);
    return n;
  }

  std::unique_ptr<Node> ParsePrimary() {
    const Token& t = Cur();
    switch (t.kind) {
      case Tok::kNumber:
        Advance();
        return Literal(Value::Number(t.number));
      case Tok::kString:
        Advance();
        return Literal(Value::String(t.text));
      case Tok::kLParen: {
        Enter(Advance());
        auto inner = ParseOr();
        if (Cur().kind != Tok::kRParen) {
          Fail(Cur(), fmt::format("expected ')' but found {}", Describe(Cur(), text_)));
        }
        Advance();
        --depth_;
        return inner;
      }
      case Tok::kName:
        return ParseName();
      case Tok::kEnd:
        Fail(t, "unexpected end of condition: expected a value");
      case Tok::kRParen:
      case Tok::kComma:
      case Tok::kEq:
      case Tok::kNe:
      case Tok::kLt:
      case Tok::kGt:
      case Tok::kLe:
      case Tok::kGe:
      case Tok::kPlus:
      case Tok::kMinus:
      case Tok::kStar:
      case Tok::kSlash:
      case Tok::kPercent:
        break;
    }
    Fail(t, fmt::format("unexpected {}: expected a value", Describe(t, text_)));
  }

  std::unique_ptr<Node> ParseName() {
    const Token& t = Advance();
    const bool simple = t.segments.empty() && t.text[0] != '$';
    if (simple) {
      if (IEquals(t.text, "TRUE")) return Literal(Value::Bool(true));
      if (IEquals(t.text, "FALSE")) return Literal(Value::Bool(false));
      if (IEquals(t.text, "NULL")) return Literal(Value::Null());
      if (IEquals(t.text, "AND") || IEquals(t.text, "OR") || IEquals(t.text, "NOT")) {
        Fail(t, fmt::format("unexpected keyword '{}': expected a value", t.text));
      }
    }
    if (Cur().kind == Tok::kLParen) {
      if (simple) return ParseCall(t);
      Fail(t, fmt::format("'{}' is not a function name", text_.substr(t.offset, t.length)));
    }
    auto n = std::make_unique<Node>();
    if (IEquals(t.text, "$body") || IEquals(t.text, "$twin")) {
      n->kind = IEquals(t.text, "$body") ? Node::Kind::kBodyPath : Node::Kind::kTwinPath;
      n->path = t.segments;
      return n;
    }
    if (t.index_offset != 0) {
      throw Failure{t.index_offset, "array indexing applies only to $body and $twin paths"};
    }
    // Dots belong to the property name (`a.b` is the property "a.b").
    n->name = std::string(text_.substr(t.offset, t.length));
    if (n->name[0] == '$') {
      n->kind = Node::Kind::kSystemProperty;
      n->name.erase(0, 1);
    } else {
      n->kind = Node::Kind::kAppProperty;
    }
    return n;
  }

  std::unique_ptr<Node> ParseCall(const Token& name) {
    const FunctionInfo* info = FindFunction(name.text);
    if (info == nullptr) Fail(name, fmt::format("unknown function '{}'", name.text));
    Enter(Advance());  // '('
    auto n = std::make_unique<Node>();
    n->kind = Node::Kind::kCall;
    n->function = info->function;
    if (Cur().kind != Tok::kRParen) {
      for (;;) {
        n->children.push_back(ParseOr());
        if (Cur().kind == Tok::kComma) {
          Advance();
          continue;
        }
        if (Cur().kind != Tok::kRParen) {
          Fail(Cur(), fmt::format("expected ',' or ')' but found {}", Describe(Cur(), text_)));
        }
        break;
      }
    }
    Advance();  // ')'
    --depth_;
    n = Finish(std::move(n), name.offset);
    const std::size_t got = n->children.size();
    if (got < info->min_args || got > info->max_args) {
      std::string want;
      if (info->max_args == kVariadic) {
        want = fmt::format("at least {}", info->min_args);
      } else if (info->min_args == info->max_args) {
        want = fmt::format("{}", info->min_args);
      } else {
        want = fmt::format("{} or {}", info->min_args, info->max_args);
      }
      Fail(name, fmt::format("function {} takes {} argument{}, got {}", info->name, want,
                             info->max_args == 1 ? "" : "s", got));
    }
    return n;
  }

  std::string_view text_;
  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::unique_ptr<Node> ParseTokens(std::string_view text, std::vector<Token> tokens) {
  return Parser(text, std::move(tokens)).Run();
}

}  // namespace ferry::routing::internal
