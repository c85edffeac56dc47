#include "core/routing/query_functions.h"

#include "core/routing/query_text.h"

namespace ferry::routing::internal {

namespace {

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

}  // namespace

const FunctionInfo* FindFunction(std::string_view name) {
  for (const auto& f : kFunctions) {
    if (IEquals(f.name, name)) return &f;
  }
  return nullptr;
}

}  // namespace ferry::routing::internal
