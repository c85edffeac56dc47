#pragma once

#include <cmath>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

// The routing query language's syntax tree: what the parser builds and the
// evaluator walks, and the values it computes.
// Internal to core/routing: part of query.cc's implementation, not of the
// interface in query.h. Namespace ferry::routing::internal.

namespace ferry::routing::internal {

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

}  // namespace ferry::routing::internal
