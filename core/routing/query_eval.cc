#include "core/routing/query_eval.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/routing/query_text.h"

namespace ferry::routing::internal {

namespace {

using Kind = Value::Kind;

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

Value Eval(MessageCache& cache, const Node& root) {
  return Evaluator(cache).Eval(root);
}

}  // namespace ferry::routing::internal
