#include "core/routing/query.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ferry::routing {
namespace internal {

enum class BinaryOp { kOr, kAnd, kEq, kNe, kLt, kGt, kLe, kGe, kAdd, kSub, kMul, kDiv, kMod };

enum class Function {
  kAbs,
  kExp,
  kPower,
  kSquare,
  kCeiling,
  kFloor,
  kSign,
  kSqrt,
  kAsNumber,
  kIsArray,
  kIsBool,
  kIsDefined,
  kIsNull,
  kIsNumber,
  kIsObject,
  kIsPrimitive,
  kIsString,
  kConcat,
  kLength,
  kLower,
  kUpper,
  kSubstring,
  kIndexOf,
  kStartsWith,
  kEndsWith,
  kContains,
};

// A literal, or an intermediate result. Arrays and objects only come from a
// JSON body or twin and point into the Evaluation's cache.
struct Value {
  enum class Kind { kUndefined, kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kUndefined;
  bool boolean = false;
  double number = 0;
  std::string string;
  const nlohmann::json* json = nullptr;

  static Value Undefined() { return {}; }
  static Value Null() { return {Kind::kNull}; }
  static Value Bool(bool b) { return {Kind::kBool, b}; }
  static Value Number(double n) {
    // inf and NaN (overflow, sqrt(-1)) are not values in the language.
    if (!std::isfinite(n)) return {};
    return {Kind::kNumber, false, n};
  }
  static Value String(std::string s) { return {Kind::kString, false, 0, std::move(s)}; }
};

struct PathSegment {
  bool is_index = false;
  std::string name;
  std::size_t index = 0;
};

struct Node {
  enum class Kind {
    kLiteral,
    kSystemProperty,  // `$name`: system, then application property "$name"
    kAppProperty,     // bare name
    kBodyPath,        // `$body...`
    kTwinPath,        // `$twin...`
    kNot,
    kNegate,
    kUnaryPlus,
    kBinary,
    kCall,
  };
  Kind kind = Kind::kLiteral;
  Value literal;
  std::string name;
  std::vector<PathSegment> path;
  BinaryOp op = BinaryOp::kOr;
  Function function = Function::kAbs;
  std::vector<std::unique_ptr<Node>> children;
  int height = 1;
};

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

}  // namespace internal

namespace {

using internal::BinaryOp;
using internal::Function;
using internal::MessageCache;
using internal::Node;
using internal::PathSegment;
using internal::Value;
using Kind = Value::Kind;

// Conditions nested deeper than this (parentheses, NOT, unary minus, calls)
// are refused, so a hostile condition cannot overflow the stack.
constexpr int kMaxDepth = 100;
// Trees taller than this (long operator chains) are refused, so evaluating
// and destroying them cannot overflow the stack either.
constexpr int kMaxHeight = 500;

char AsciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
char AsciiUpper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string Lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

std::string_view Trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsContinuationByte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// Number of Unicode characters in `s` (UTF-8; a stray byte counts as one).
std::size_t CharCount(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += IsContinuationByte(c) ? 0 : 1;
  return n;
}

// Byte offset of character `chars` in `s` (s.size() past the end).
std::size_t ByteOffset(std::string_view s, std::size_t chars) {
  std::size_t i = 0;
  while (i < s.size() && chars > 0) {
    ++i;
    while (i < s.size() && IsContinuationByte(s[i])) ++i;
    --chars;
  }
  return i;
}

void AppendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// ---------------------------------------------------------------------------
// Functions

struct FunctionInfo {
  std::string_view name;
  Function function;
  std::size_t min_args;
  std::size_t max_args;
};

constexpr std::size_t kVariadic = std::numeric_limits<std::size_t>::max();

constexpr FunctionInfo kFunctions[] = {
    {"ABS", Function::kAbs, 1, 1},
    {"EXP", Function::kExp, 1, 1},
    {"POWER", Function::kPower, 2, 2},
    {"SQUARE", Function::kSquare, 1, 1},
    {"CEILING", Function::kCeiling, 1, 1},
    {"FLOOR", Function::kFloor, 1, 1},
    {"SIGN", Function::kSign, 1, 1},
    {"SQRT", Function::kSqrt, 1, 1},
    {"AS_NUMBER", Function::kAsNumber, 1, 1},
    {"IS_ARRAY", Function::kIsArray, 1, 1},
    {"IS_BOOL", Function::kIsBool, 1, 1},
    {"IS_DEFINED", Function::kIsDefined, 1, 1},
    {"IS_NULL", Function::kIsNull, 1, 1},
    {"IS_NUMBER", Function::kIsNumber, 1, 1},
    {"IS_OBJECT", Function::kIsObject, 1, 1},
    {"IS_PRIMITIVE", Function::kIsPrimitive, 1, 1},
    {"IS_STRING", Function::kIsString, 1, 1},
    {"CONCAT", Function::kConcat, 2, kVariadic},
    {"LENGTH", Function::kLength, 1, 1},
    {"LOWER", Function::kLower, 1, 1},
    {"UPPER", Function::kUpper, 1, 1},
    {"SUBSTRING", Function::kSubstring, 2, 3},
    {"INDEX_OF", Function::kIndexOf, 2, 2},
    {"STARTS_WITH", Function::kStartsWith, 2, 2},
    {"ENDS_WITH", Function::kEndsWith, 2, 2},
    {"CONTAINS", Function::kContains, 2, 2},
};

const FunctionInfo* FindFunction(std::string_view name) {
  for (const auto& f : kFunctions) {
    if (IEquals(f.name, name)) return &f;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Lexer

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

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsNameChar(char c) {
  return IsNameStart(c) || IsDigit(c);
}
bool IsHexDigit(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : s_(text) {}

  std::vector<Token> Run() {
    std::vector<Token> out;
    for (;;) {
      while (i_ < s_.size() &&
             (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n')) {
        ++i_;
      }
      Token t;
      t.offset = i_;
      if (i_ >= s_.size()) {
        out.push_back(std::move(t));
        return out;
      }
      const char c = s_[i_];
      if (IsDigit(c) || (c == '.' && i_ + 1 < s_.size() && IsDigit(s_[i_ + 1]))) {
        LexNumber(t);
      } else if (c == '\'' || c == '"') {
        LexString(t);
      } else if (IsNameStart(c) || (c == '$' && i_ + 1 < s_.size() && IsNameChar(s_[i_ + 1]))) {
        LexName(t);
      } else {
        LexOperator(t);
      }
      t.length = i_ - t.offset;
      out.push_back(std::move(t));
    }
  }

 private:
  [[noreturn]] void Fail(std::size_t offset, std::string message) {
    throw Failure{offset, std::move(message)};
  }

  char Peek(std::size_t ahead = 0) const { return i_ + ahead < s_.size() ? s_[i_ + ahead] : '\0'; }

  void LexNumber(Token& t) {
    const std::size_t start = i_;
    if (Peek() == '0' && (Peek(1) == 'x' || Peek(1) == 'X')) {
      i_ += 2;
      const std::size_t digits = i_;
      while (IsHexDigit(Peek())) ++i_;
      if (i_ == digits) Fail(start, "hexadecimal literal needs digits after '0x'");
      if (i_ - digits > 16) Fail(start, "hexadecimal literal is larger than 64 bits");
      std::uint64_t v = 0;
      std::from_chars(s_.data() + digits, s_.data() + i_, v, 16);
      t.number = static_cast<double>(v);
    } else {
      while (IsDigit(Peek())) ++i_;
      if (Peek() == '.') {
        ++i_;
        while (IsDigit(Peek())) ++i_;
      }
      if (Peek() == 'e' || Peek() == 'E') {
        ++i_;
        if (Peek() == '+' || Peek() == '-') ++i_;
        if (!IsDigit(Peek())) Fail(start, "number needs digits in its exponent");
        while (IsDigit(Peek())) ++i_;
      }
      const auto [ptr, ec] = std::from_chars(s_.data() + start, s_.data() + i_, t.number);
      if (ec == std::errc::result_out_of_range) Fail(start, "number is out of range");
      if (ec != std::errc() || ptr != s_.data() + i_) Fail(start, "invalid number");
    }
    if (IsNameChar(Peek()) || Peek() == '.') {
      Fail(start, fmt::format("invalid number '{}'", s_.substr(start, i_ + 1 - start)));
    }
    t.kind = Tok::kNumber;
  }

  std::uint32_t Hex4(std::size_t escape_offset) {
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = Peek();
      if (!IsHexDigit(c)) Fail(escape_offset, "\\u escape needs four hexadecimal digits");
      v = v * 16 + static_cast<std::uint32_t>(IsDigit(c) ? c - '0' : AsciiLower(c) - 'a' + 10);
      ++i_;
    }
    return v;
  }

  void LexString(Token& t) {
    const std::size_t start = i_;
    const char quote = s_[i_++];
    for (;;) {
      if (i_ >= s_.size()) Fail(start, "unterminated string literal");
      const char c = s_[i_];
      if (c == quote) {
        ++i_;
        break;
      }
      if (c != '\\') {
        t.text += c;
        ++i_;
        continue;
      }
      const std::size_t escape = i_;
      ++i_;
      const char e = Peek();
      ++i_;
      switch (e) {
        case '\'':
          t.text += '\'';
          break;
        case '"':
          t.text += '"';
          break;
        case '\\':
          t.text += '\\';
          break;
        case '/':
          t.text += '/';
          break;
        case 'b':
          t.text += '\b';
          break;
        case 'f':
          t.text += '\f';
          break;
        case 'n':
          t.text += '\n';
          break;
        case 'r':
          t.text += '\r';
          break;
        case 't':
          t.text += '\t';
          break;
        case 'u': {
          std::uint32_t cp = Hex4(escape);
          if (cp >= 0xDC00 && cp <= 0xDFFF) Fail(escape, "unpaired UTF-16 surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (Peek() != '\\' || Peek(1) != 'u') {
              Fail(escape, "unpaired UTF-16 surrogate in \\u escape");
            }
            const std::size_t low_escape = i_;
            i_ += 2;
            const std::uint32_t low = Hex4(low_escape);
            if (low < 0xDC00 || low > 0xDFFF) {
              Fail(escape, "unpaired UTF-16 surrogate in \\u escape");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(t.text, cp);
          break;
        }
        case '\0':
          if (i_ > s_.size()) Fail(start, "unterminated string literal");
          [[fallthrough]];
        default:
          Fail(escape, fmt::format("invalid escape '\\{}' in string literal", e));
      }
    }
    t.kind = Tok::kString;
  }

  // One segment of a name: letters, digits, '_', non-ASCII, and '-' between
  // them (so `iothub-message-schema` is one name; `a - 1` subtracts).
  void LexSegment() {
    while (IsNameChar(Peek()) || (Peek() == '-' && IsNameChar(Peek(1)))) ++i_;
  }

  void LexName(Token& t) {
    const std::size_t start = i_;
    if (Peek() == '$') ++i_;
    LexSegment();
    t.text = std::string(s_.substr(start, i_ - start));
    for (;;) {
      if (Peek() == '.') {
        ++i_;
        const std::size_t seg = i_;
        if (!IsNameChar(Peek())) Fail(seg, "expected a property name after '.'");
        LexSegment();
        t.segments.push_back({false, std::string(s_.substr(seg, i_ - seg)), 0});
      } else if (Peek() == '[') {
        if (t.index_offset == 0) t.index_offset = i_;
        const std::size_t bracket = i_;
        ++i_;
        const std::size_t digits = i_;
        while (IsDigit(Peek())) ++i_;
        if (i_ == digits || Peek() != ']') {
          Fail(bracket, "expected a non-negative integer array index in '[...]'");
        }
        std::size_t index = 0;
        const auto [ptr, ec] = std::from_chars(s_.data() + digits, s_.data() + i_, index);
        if (ec != std::errc() || ptr != s_.data() + i_) Fail(bracket, "array index is too large");
        ++i_;
        t.segments.push_back({true, {}, index});
      } else {
        break;
      }
    }
    t.kind = Tok::kName;
  }

  void LexOperator(Token& t) {
    const char c = s_[i_];
    const char n = Peek(1);
    auto two = [&](Tok k) {
      t.kind = k;
      i_ += 2;
    };
    auto one = [&](Tok k) {
      t.kind = k;
      i_ += 1;
    };
    switch (c) {
      case '(':
        return one(Tok::kLParen);
      case ')':
        return one(Tok::kRParen);
      case ',':
        return one(Tok::kComma);
      case '+':
        return one(Tok::kPlus);
      case '-':
        return one(Tok::kMinus);
      case '*':
        return one(Tok::kStar);
      case '/':
        return one(Tok::kSlash);
      case '%':
        return one(Tok::kPercent);
      case '=':
        if (n == '=') Fail(i_, "unexpected '==': use '=' for equality");
        return one(Tok::kEq);
      case '!':
        if (n == '=') return two(Tok::kNe);
        Fail(i_, "unexpected '!': use NOT or '!='");
      case '<':
        if (n == '=') return two(Tok::kLe);
        if (n == '>') return two(Tok::kNe);
        return one(Tok::kLt);
      case '>':
        if (n == '=') return two(Tok::kGe);
        return one(Tok::kGt);
      default:
        break;
    }
    if (c == '$') Fail(i_, "expected a property name after '$'");
    if (static_cast<unsigned char>(c) < 0x20) Fail(i_, "unexpected control character");
    Fail(i_, fmt::format("unexpected character '{}'", c));
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

// ---------------------------------------------------------------------------
// Parser: recursive descent, one function per precedence level.

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

// ---------------------------------------------------------------------------
// Evaluation

const std::string* FindIgnoringCase(const std::map<std::string, std::string>& m,
                                    std::string_view name) {
  if (const auto it = m.find(std::string(name)); it != m.end()) return &it->second;
  for (const auto& [k, v] : m) {
    if (IEquals(k, name)) return &v;
  }
  return nullptr;
}

// The query's camelCase names for IoT Hub system properties, lower-cased,
// and their wire names.
constexpr std::pair<std::string_view, std::string_view> kSystemAliases[] = {
    {"contenttype", "content-type"},
    {"contentencoding", "content-encoding"},
    {"messageid", "message-id"},
    {"correlationid", "correlation-id"},
    {"userid", "user-id"},
    {"to", "to"},
    {"absoluteexpirytime", "absolute-expiry-time"},
    {"connectiondeviceid", "iothub-connection-device-id"},
    {"connectionmoduleid", "iothub-connection-module-id"},
    {"connectionauthmethod", "iothub-connection-auth-method"},
    {"connectiondevicegenerationid", "iothub-connection-auth-generation-id"},
    {"enqueuedtime", "iothub-enqueuedtime"},
    {"creationtimeutc", "iothub-creation-time-utc"},
    {"messagesource", "iothub-message-source"},
    {"interfacename", "iothub-interface-name"},
    {"dataschema", "dt-dataschema"},
    {"subject", "dt-subject"},
};

const std::string* ContentType(const QueryInput& in) {
  return in.content_type ? &*in.content_type
                         : FindIgnoringCase(in.system_properties, "content-type");
}
const std::string* ContentEncoding(const QueryInput& in) {
  return in.content_encoding ? &*in.content_encoding
                             : FindIgnoringCase(in.system_properties, "content-encoding");
}

const std::string* FindSystemProperty(const QueryInput& in, std::string_view name) {
  const std::string lower = Lowered(name);
  if (lower == "contenttype" || lower == "content-type") {
    if (in.content_type) return &*in.content_type;
  }
  if (lower == "contentencoding" || lower == "content-encoding") {
    if (in.content_encoding) return &*in.content_encoding;
  }
  if (const std::string* v = FindIgnoringCase(in.system_properties, name)) return v;
  for (const auto& [alias, wire] : kSystemAliases) {
    if (alias == lower) return FindIgnoringCase(in.system_properties, wire);
  }
  return nullptr;
}

enum class BodyEncoding { kNone, kUtf8, kUtf16, kUtf32 };

// The $body rule: content type application/json and a UTF encoding.
BodyEncoding JsonBodyEncoding(const QueryInput& in) {
  const std::string* type = ContentType(in);
  const std::string* encoding = ContentEncoding(in);
  if (type == nullptr || encoding == nullptr) return BodyEncoding::kNone;
  if (!IEquals(Trimmed(*type), "application/json")) return BodyEncoding::kNone;
  const std::string_view e = Trimmed(*encoding);
  if (IEquals(e, "utf-8")) return BodyEncoding::kUtf8;
  if (IEquals(e, "utf-16")) return BodyEncoding::kUtf16;
  if (IEquals(e, "utf-32")) return BodyEncoding::kUtf32;
  return BodyEncoding::kNone;
}

// Decodes UTF-16/32 code units from bytes: a byte-order mark decides the
// order, otherwise little-endian (what .NET's Encoding.Unicode/UTF32 write).
template <typename Char>
std::optional<std::basic_string<Char>> CodeUnits(std::string_view bytes) {
  constexpr std::size_t kWidth = sizeof(Char);
  if (bytes.size() % kWidth != 0) return std::nullopt;
  auto unit = [&](std::size_t at, bool big) {
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < kWidth; ++k) {
      const auto b = static_cast<unsigned char>(bytes[at + (big ? k : kWidth - 1 - k)]);
      v = (v << 8) | b;
    }
    return v;
  };
  bool big = false;
  std::size_t at = 0;
  if (!bytes.empty()) {
    if (unit(0, false) == 0xFEFF) {
      at = kWidth;
    } else if (unit(0, true) == 0xFEFF) {
      big = true;
      at = kWidth;
    }
  }
  std::basic_string<Char> out;
  out.reserve(bytes.size() / kWidth);
  for (; at < bytes.size(); at += kWidth) out += static_cast<Char>(unit(at, big));
  return out;
}

nlohmann::json ParseBody(const QueryInput& in) {
  const nlohmann::json invalid(nlohmann::json::value_t::discarded);
  switch (JsonBodyEncoding(in)) {
    case BodyEncoding::kNone:
      return invalid;
    case BodyEncoding::kUtf8: {
      std::string_view body = in.body;
      if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
      return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    }
    case BodyEncoding::kUtf16: {
      const auto units = CodeUnits<char16_t>(in.body);
      if (!units) return invalid;
      return nlohmann::json::parse(*units, nullptr, /*allow_exceptions=*/false);
    }
    case BodyEncoding::kUtf32: {
      const auto units = CodeUnits<char32_t>(in.body);
      if (!units) return invalid;
      for (const char32_t c : *units) {
        if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return invalid;
      }
      return nlohmann::json::parse(*units, nullptr, /*allow_exceptions=*/false);
    }
  }
  return invalid;
}

}  // namespace

namespace internal {

const nlohmann::json* MessageCache::Body() {
  if (!body_) body_ = ParseBody(input_);
  return body_->is_discarded() ? nullptr : &*body_;
}

const nlohmann::json* MessageCache::Twin() {
  if (!twin_) {
    twin_ = input_.twin ? nlohmann::json::parse(*input_.twin, nullptr, false)
                        : nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return twin_->is_discarded() ? nullptr : &*twin_;
}

}  // namespace internal

namespace {

Value FromJson(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::Null();
    case nlohmann::json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return Value::Number(j.get<double>());
    case nlohmann::json::value_t::string:
      return Value::String(j.get<std::string>());
    case nlohmann::json::value_t::array:
      return {Kind::kArray, false, 0, {}, &j};
    case nlohmann::json::value_t::object:
      return {Kind::kObject, false, 0, {}, &j};
    case nlohmann::json::value_t::binary:
    case nlohmann::json::value_t::discarded:
      return Value::Undefined();
  }
  return Value::Undefined();
}

// Walks `path` from `root`. The root itself (an empty path, or one that
// starts with an index) is not addressable, as in IoT Hub.
Value Walk(const nlohmann::json* root, const std::vector<PathSegment>& path, bool ignore_case) {
  if (root == nullptr || path.empty() || path.front().is_index) return Value::Undefined();
  const nlohmann::json* j = root;
  for (const PathSegment& seg : path) {
    if (seg.is_index) {
      if (!j->is_array() || seg.index >= j->size()) return Value::Undefined();
      j = &(*j)[seg.index];
      continue;
    }
    if (!j->is_object()) return Value::Undefined();
    auto it = j->find(seg.name);
    if (it == j->end() && ignore_case) {
      for (it = j->begin(); it != j->end(); ++it) {
        if (IEquals(it.key(), seg.name)) break;
      }
    }
    if (it == j->end()) return Value::Undefined();
    j = &*it;
  }
  return FromJson(*j);
}

bool Truthy(const Value& v, bool& out) {
  if (v.kind != Kind::kBool) return false;
  out = v.boolean;
  return true;
}

// -1, 0, 1, or nullopt when the two cannot be compared.
std::optional<int> Order(const Value& a, const Value& b) {
  if (a.kind != b.kind) return std::nullopt;
  switch (a.kind) {
    case Kind::kNull:
      return 0;
    case Kind::kBool:
      return static_cast<int>(a.boolean) - static_cast<int>(b.boolean);
    case Kind::kNumber:
      return a.number < b.number ? -1 : (a.number > b.number ? 1 : 0);
    case Kind::kString: {
      const int c = a.string.compare(b.string);
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    case Kind::kUndefined:
    case Kind::kArray:
    case Kind::kObject:
      return std::nullopt;
  }
  return std::nullopt;
}

// An integral number argument (SUBSTRING positions), or nullopt.
std::optional<double> Integral(const Value& v) {
  if (v.kind != Kind::kNumber || std::trunc(v.number) != v.number) return std::nullopt;
  return v.number;
}

// Parses a string the way AS_NUMBER does: a JSON number, surrounding
// blanks allowed.
Value StringToNumber(std::string_view s) {
  s = Trimmed(s);
  std::size_t i = 0;
  auto digits = [&] {
    const std::size_t start = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    return i > start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (!digits()) return Value::Undefined();
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return Value::Undefined();
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return Value::Undefined();
  }
  if (i != s.size()) return Value::Undefined();
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return Value::Undefined();
  return Value::Number(v);
}

class Evaluator {
 public:
  explicit Evaluator(MessageCache& cache) : cache_(cache) {}

  Value Eval(const Node& n) {
    switch (n.kind) {
      case Node::Kind::kLiteral:
        return n.literal;
      case Node::Kind::kSystemProperty: {
        if (const std::string* v = FindSystemProperty(cache_.input(), n.name)) {
          return Value::String(*v);
        }
        // An application property whose name starts with '$'.
        if (const std::string* v =
                FindIgnoringCase(cache_.input().application_properties, "$" + n.name)) {
          return Value::String(*v);
        }
        return Value::Undefined();
      }
      case Node::Kind::kAppProperty: {
        const std::string* v = FindIgnoringCase(cache_.input().application_properties, n.name);
        return v ? Value::String(*v) : Value::Undefined();
      }
      case Node::Kind::kBodyPath:
        return Walk(cache_.Body(), n.path, /*ignore_case=*/false);
      case Node::Kind::kTwinPath:
        return Walk(cache_.Twin(), n.path, /*ignore_case=*/true);
      case Node::Kind::kNot: {
        bool b = false;
        return Truthy(Eval(*n.children[0]), b) ? Value::Bool(!b) : Value::Undefined();
      }
      case Node::Kind::kNegate: {
        const Value v = Eval(*n.children[0]);
        return v.kind == Kind::kNumber ? Value::Number(-v.number) : Value::Undefined();
      }
      case Node::Kind::kUnaryPlus: {
        Value v = Eval(*n.children[0]);
        return v.kind == Kind::kNumber ? v : Value::Undefined();
      }
      case Node::Kind::kBinary:
        return EvalBinary(n);
      case Node::Kind::kCall:
        return EvalCall(n);
    }
    return Value::Undefined();
  }

 private:
  Value EvalBinary(const Node& n) {
    const Value a = Eval(*n.children[0]);
    // AND/OR are three-valued: false AND x is false, true OR x is true,
    // whatever x is; otherwise a non-Boolean side makes the result undefined.
    bool ab = false;
    const bool a_bool = Truthy(a, ab);
    if (n.op == BinaryOp::kAnd) {
      if (a_bool && !ab) return Value::Bool(false);
      bool bb = false;
      const bool b_bool = Truthy(Eval(*n.children[1]), bb);
      if (b_bool && !bb) return Value::Bool(false);
      return a_bool && b_bool ? Value::Bool(true) : Value::Undefined();
    }
    if (n.op == BinaryOp::kOr) {
      if (a_bool && ab) return Value::Bool(true);
      bool bb = false;
      const bool b_bool = Truthy(Eval(*n.children[1]), bb);
      if (b_bool && bb) return Value::Bool(true);
      return a_bool && b_bool ? Value::Bool(false) : Value::Undefined();
    }
    const Value b = Eval(*n.children[1]);
    const std::optional<int> o = Order(a, b);
    const bool numbers = a.kind == Kind::kNumber && b.kind == Kind::kNumber;
    const double x = a.number;
    const double y = b.number;
    switch (n.op) {
      case BinaryOp::kAnd:
      case BinaryOp::kOr:
        return Value::Undefined();  // handled above
      case BinaryOp::kEq:
        return o ? Value::Bool(*o == 0) : Value::Undefined();
      case BinaryOp::kNe:
        return o ? Value::Bool(*o != 0) : Value::Undefined();
      case BinaryOp::kLt:
        return o ? Value::Bool(*o < 0) : Value::Undefined();
      case BinaryOp::kGt:
        return o ? Value::Bool(*o > 0) : Value::Undefined();
      case BinaryOp::kLe:
        return o ? Value::Bool(*o <= 0) : Value::Undefined();
      case BinaryOp::kGe:
        return o ? Value::Bool(*o >= 0) : Value::Undefined();
      case BinaryOp::kAdd:
        return numbers ? Value::Number(x + y) : Value::Undefined();
      case BinaryOp::kSub:
        return numbers ? Value::Number(x - y) : Value::Undefined();
      case BinaryOp::kMul:
        return numbers ? Value::Number(x * y) : Value::Undefined();
      case BinaryOp::kDiv:
        return numbers && y != 0 ? Value::Number(x / y) : Value::Undefined();
      case BinaryOp::kMod:
        return numbers && y != 0 ? Value::Number(std::fmod(x, y)) : Value::Undefined();
    }
    return Value::Undefined();
  }

  Value EvalCall(const Node& n) {
    std::vector<Value> args;
    args.reserve(n.children.size());
    for (const auto& c : n.children) args.push_back(Eval(*c));
    const Value& a = args[0];
    const bool num = a.kind == Kind::kNumber;
    const bool str = a.kind == Kind::kString;
    auto both_strings = [&] { return str && args[1].kind == Kind::kString; };
    switch (n.function) {
      case Function::kAbs:
        return num ? Value::Number(std::fabs(a.number)) : Value::Undefined();
      case Function::kExp:
        return num ? Value::Number(std::exp(a.number)) : Value::Undefined();
      case Function::kPower:
        return num && args[1].kind == Kind::kNumber
                   ? Value::Number(std::pow(a.number, args[1].number))
                   : Value::Undefined();
      case Function::kSquare:
        return num ? Value::Number(a.number * a.number) : Value::Undefined();
      case Function::kCeiling:
        return num ? Value::Number(std::ceil(a.number)) : Value::Undefined();
      case Function::kFloor:
        return num ? Value::Number(std::floor(a.number)) : Value::Undefined();
      case Function::kSign:
        return num ? Value::Number(a.number > 0 ? 1 : (a.number < 0 ? -1 : 0)) : Value::Undefined();
      case Function::kSqrt:
        return num ? Value::Number(std::sqrt(a.number)) : Value::Undefined();
      case Function::kAsNumber:
        if (num) return a;
        return str ? StringToNumber(a.string) : Value::Undefined();
      case Function::kIsArray:
        return Value::Bool(a.kind == Kind::kArray);
      case Function::kIsBool:
        return Value::Bool(a.kind == Kind::kBool);
      case Function::kIsDefined:
        return Value::Bool(a.kind != Kind::kUndefined);
      case Function::kIsNull:
        return Value::Bool(a.kind == Kind::kNull);
      case Function::kIsNumber:
        return Value::Bool(num);
      case Function::kIsObject:
        return Value::Bool(a.kind == Kind::kObject);
      case Function::kIsPrimitive:
        return Value::Bool(a.kind == Kind::kNull || a.kind == Kind::kBool || num || str);
      case Function::kIsString:
        return Value::Bool(str);
      case Function::kConcat: {
        std::string out;
        for (const Value& v : args) {
          if (v.kind != Kind::kString) return Value::Undefined();
          out += v.string;
        }
        return Value::String(std::move(out));
      }
      case Function::kLength:
        return str ? Value::Number(static_cast<double>(CharCount(a.string))) : Value::Undefined();
      case Function::kLower:
      case Function::kUpper: {
        if (!str) return Value::Undefined();
        std::string out = a.string;
        for (char& c : out) c = n.function == Function::kLower ? AsciiLower(c) : AsciiUpper(c);
        return Value::String(std::move(out));
      }
      case Function::kSubstring: {
        const std::optional<double> start = Integral(args[1]);
        std::optional<double> length = std::numeric_limits<double>::infinity();
        if (args.size() == 3) length = Integral(args[2]);
        if (!str || !start || !length) return Value::Undefined();
        const double chars = static_cast<double>(CharCount(a.string));
        const double from = std::clamp(*start, 0.0, chars);
        const double to = std::clamp(*start + std::max(*length, 0.0), from, chars);
        const std::size_t b0 = ByteOffset(a.string, static_cast<std::size_t>(from));
        const std::size_t b1 = ByteOffset(a.string, static_cast<std::size_t>(to));
        return Value::String(a.string.substr(b0, b1 - b0));
      }
      case Function::kIndexOf: {
        if (!both_strings()) return Value::Undefined();
        const std::size_t at = a.string.find(args[1].string);
        if (at == std::string::npos) return Value::Number(-1);
        return Value::Number(
            static_cast<double>(CharCount(std::string_view(a.string).substr(0, at))));
      }
      case Function::kStartsWith:
        if (!both_strings()) return Value::Undefined();
        return Value::Bool(std::string_view(a.string).starts_with(args[1].string));
      case Function::kEndsWith:
        if (!both_strings()) return Value::Undefined();
        return Value::Bool(std::string_view(a.string).ends_with(args[1].string));
      case Function::kContains:
        if (!both_strings()) return Value::Undefined();
        return Value::Bool(a.string.find(args[1].string) != std::string::npos);
    }
    return Value::Undefined();
  }

  MessageCache& cache_;
};

}  // namespace

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
    std::vector<Token> tokens = Lexer(condition).Run();
    if (tokens.size() == 1) return Query(std::string(condition), nullptr);  // blank
    std::shared_ptr<const Node> root = Parser(condition, std::move(tokens)).Run();
    return Query(std::string(condition), std::move(root));
  } catch (const Failure& f) {
    return ParseError{CharCount(condition.substr(0, f.offset)) + 1, f.message};
  }
}

Outcome Query::Evaluate(Evaluation& message) const {
  if (root_ == nullptr) return Outcome::kTrue;
  const Value v = Evaluator(*message.cache_).Eval(*root_);
  if (v.kind != Kind::kBool) return Outcome::kUndefined;
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
