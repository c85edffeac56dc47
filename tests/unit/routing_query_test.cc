#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/routing/query.h"
#include "tests/unit/routing_query_support.h"

namespace ferry::routing {
namespace {

using test::Error;
using test::Eval;
using test::Match;
using test::Telemetry;

// ---------------------------------------------------------------------------
// Trivial conditions

TEST(RoutingQuery, EmptyConditionMatchesEverything) {
  EXPECT_TRUE(Match(""));
  EXPECT_TRUE(Match("   \t\n "));
  EXPECT_TRUE(Match("", QueryInput{}));
}

TEST(RoutingQuery, TrueMatchesEverythingFalseNothing) {
  EXPECT_TRUE(Match("true"));
  EXPECT_TRUE(Match("TRUE"));
  EXPECT_TRUE(Match("True", QueryInput{}));
  EXPECT_EQ(Eval("false"), Outcome::kFalse);
  EXPECT_EQ(Eval("FaLsE"), Outcome::kFalse);
}

TEST(RoutingQuery, NonBooleanResultsDoNotMatch) {
  EXPECT_EQ(Eval("null"), Outcome::kUndefined);
  EXPECT_EQ(Eval("1"), Outcome::kUndefined);
  EXPECT_EQ(Eval("'true'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("processingPath"), Outcome::kUndefined);
  EXPECT_EQ(Eval("missing"), Outcome::kUndefined);
  EXPECT_EQ(Eval("$body.nested"), Outcome::kUndefined);
}

TEST(RoutingQuery, TextIsKept) {
  auto parsed = Query::Parse("a = 'b'");
  ASSERT_TRUE(std::holds_alternative<Query>(parsed));
  EXPECT_EQ(std::get<Query>(parsed).text(), "a = 'b'");
}

// ---------------------------------------------------------------------------
// Literals

TEST(RoutingQuery, DecimalLiterals) {
  EXPECT_TRUE(Match("1 = 1"));
  EXPECT_TRUE(Match("1.0 = 1"));
  EXPECT_TRUE(Match("1.5 = 1.50"));
  EXPECT_TRUE(Match(".5 = 0.5"));
  EXPECT_TRUE(Match("1e3 = 1000"));
  EXPECT_TRUE(Match("1E3 = 1000"));
  EXPECT_TRUE(Match("1.5e+2 = 150"));
  EXPECT_TRUE(Match("25e-2 = 0.25"));
  EXPECT_TRUE(Match("-3 = 0 - 3"));
  EXPECT_TRUE(Match("007 = 7"));
}

TEST(RoutingQuery, HexLiterals) {
  EXPECT_TRUE(Match("0x1F = 31"));
  EXPECT_TRUE(Match("0X1f = 31"));
  EXPECT_TRUE(Match("0xff = 255"));
  EXPECT_TRUE(Match("0x0 = 0"));
  EXPECT_TRUE(Match("-0x10 = -16"));
  EXPECT_TRUE(Match("0xFFFFFFFF = 4294967295"));
}

TEST(RoutingQuery, StringLiteralsInEitherQuote) {
  EXPECT_TRUE(Match("'abc' = \"abc\""));
  EXPECT_TRUE(Match("'' = \"\""));
  EXPECT_TRUE(Match("\"a'b\" = 'a\\'b'"));
  EXPECT_TRUE(Match("'a\"b' = \"a\\\"b\""));
}

TEST(RoutingQuery, StringEscapes) {
  EXPECT_TRUE(Match(R"('\\' = CONCAT('\u005c', ''))"));
  EXPECT_TRUE(Match(R"(LENGTH('\\') = 1)"));
  EXPECT_TRUE(Match(R"(LENGTH('\'') = 1)"));
  EXPECT_TRUE(Match(R"(LENGTH("\"") = 1)"));
  EXPECT_TRUE(Match(R"('\u0041\u00e9' = 'Aé')"));
  EXPECT_TRUE(Match(R"('\u20AC' = '€')"));
  EXPECT_TRUE(Match(R"('\uD83D\uDE00' = '😀')"));
  EXPECT_TRUE(Match(R"(LENGTH('\uD83D\uDE00') = 1)"));
  EXPECT_TRUE(
      Match(R"('\n\t\r\/\b\f' = CONCAT('\u000A', '\u0009', '\u000d', '/', '\u0008', '\u000C'))"));
  EXPECT_TRUE(Match("'a\nb' = CONCAT('a', '\u000a', 'b')"));  // raw newline inside a literal
}

TEST(RoutingQuery, BooleanAndNullLiterals) {
  EXPECT_TRUE(Match("true = true"));
  EXPECT_TRUE(Match("false != true"));
  EXPECT_TRUE(Match("NULL = null"));
  EXPECT_TRUE(Match("IS_NULL(Null)"));
  EXPECT_TRUE(Match("IS_BOOL(TRUE)"));
}

// ---------------------------------------------------------------------------
// Operators

TEST(RoutingQuery, EqualityOnEachType) {
  EXPECT_TRUE(Match("'a' = 'a'"));
  EXPECT_FALSE(Match("'a' = 'A'"));  // values compare case-sensitively
  EXPECT_TRUE(Match("2 = 2.0"));
  EXPECT_TRUE(Match("true = true"));
  EXPECT_TRUE(Match("null = null"));
  EXPECT_EQ(Eval("'a' != 'a'"), Outcome::kFalse);
  EXPECT_TRUE(Match("'a' != 'b'"));
  EXPECT_TRUE(Match("'a' <> 'b'"));
  EXPECT_EQ(Eval("1 <> 1"), Outcome::kFalse);
}

TEST(RoutingQuery, OrderingOperators) {
  EXPECT_TRUE(Match("1 < 2"));
  EXPECT_EQ(Eval("2 < 2"), Outcome::kFalse);
  EXPECT_TRUE(Match("2 <= 2"));
  EXPECT_TRUE(Match("3 > 2"));
  EXPECT_EQ(Eval("2 > 2"), Outcome::kFalse);
  EXPECT_TRUE(Match("2 >= 2"));
  EXPECT_TRUE(Match("-1 < 0"));
  EXPECT_TRUE(Match("'abc' < 'abd'"));
  EXPECT_TRUE(Match("'B' < 'a'"));  // ordinal
  EXPECT_TRUE(Match("'ab' > 'a'"));
  EXPECT_TRUE(Match("false < true"));
}

TEST(RoutingQuery, ComparingDifferentTypesIsUndefined) {
  EXPECT_EQ(Eval("1 = '1'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("1 != '1'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("true = 1"), Outcome::kUndefined);
  EXPECT_EQ(Eval("null = 0"), Outcome::kUndefined);
  EXPECT_EQ(Eval("null != 'x'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("'a' < 1"), Outcome::kUndefined);
  EXPECT_EQ(Eval("$body.nested = $body.nested"), Outcome::kUndefined);
  EXPECT_EQ(Eval("$body.matrix = $body.matrix"), Outcome::kUndefined);
}

TEST(RoutingQuery, Arithmetic) {
  EXPECT_TRUE(Match("1 + 2 = 3"));
  EXPECT_TRUE(Match("5 - 7 = -2"));
  EXPECT_TRUE(Match("6 * 7 = 42"));
  EXPECT_TRUE(Match("7 / 2 = 3.5"));
  EXPECT_TRUE(Match("7 % 3 = 1"));
  EXPECT_TRUE(Match("-7 % 3 = -1"));
  EXPECT_TRUE(Match("7.5 % 2 = 1.5"));
  EXPECT_TRUE(Match("- -3 = 3"));
  EXPECT_TRUE(Match("+3 = 3"));
  EXPECT_TRUE(Match("-(1 + 2) = -3"));
  EXPECT_TRUE(Match("$body.temp * 2 = 60"));
  EXPECT_EQ(Eval("$body.temp-1 = 29"), Outcome::kUndefined);  // `temp-1` is one name
  EXPECT_TRUE(Match("$body.temp - 1 = 29"));
}

TEST(RoutingQuery, ArithmeticOnNonNumbersIsUndefined) {
  EXPECT_EQ(Eval("'a' + 'b' = 'ab'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("'1' + 1 = 2"), Outcome::kUndefined);
  EXPECT_EQ(Eval("true + 1 = 2"), Outcome::kUndefined);
  EXPECT_EQ(Eval("null * 1 = 0"), Outcome::kUndefined);
  EXPECT_EQ(Eval("-'a' = 'a'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("missing + 1 = 1"), Outcome::kUndefined);
}

TEST(RoutingQuery, DivisionByZeroAndOverflowAreUndefined) {
  EXPECT_EQ(Eval("1 / 0 = 0"), Outcome::kUndefined);
  EXPECT_EQ(Eval("1 % 0 = 0"), Outcome::kUndefined);
  EXPECT_EQ(Eval("IS_NUMBER(1 / 0)"), Outcome::kFalse);
  EXPECT_EQ(Eval("IS_DEFINED(1e308 * 10)"), Outcome::kFalse);
  EXPECT_TRUE(Match("IS_DEFINED(0 / 5)"));
}

TEST(RoutingQuery, LogicalOperatorsTruthTables) {
  EXPECT_TRUE(Match("true AND true"));
  EXPECT_EQ(Eval("true AND false"), Outcome::kFalse);
  EXPECT_EQ(Eval("false AND true"), Outcome::kFalse);
  EXPECT_TRUE(Match("true OR false"));
  EXPECT_TRUE(Match("false OR true"));
  EXPECT_EQ(Eval("false OR false"), Outcome::kFalse);
  EXPECT_TRUE(Match("NOT false"));
  EXPECT_EQ(Eval("NOT true"), Outcome::kFalse);
  EXPECT_TRUE(Match("NOT NOT true"));
  EXPECT_TRUE(Match("true and true or false"));
  EXPECT_TRUE(Match("not false"));
}

TEST(RoutingQuery, LogicalOperatorsAreThreeValued) {
  // Undefined does not poison a decided result...
  EXPECT_EQ(Eval("missing = 1 AND false"), Outcome::kFalse);
  EXPECT_EQ(Eval("false AND missing = 1"), Outcome::kFalse);
  EXPECT_TRUE(Match("missing = 1 OR true"));
  EXPECT_TRUE(Match("true OR missing = 1"));
  // ...but leaves an undecided one undefined.
  EXPECT_EQ(Eval("missing = 1 AND true"), Outcome::kUndefined);
  EXPECT_EQ(Eval("missing = 1 OR false"), Outcome::kUndefined);
  EXPECT_EQ(Eval("NOT (missing = 1)"), Outcome::kUndefined);
  EXPECT_EQ(Eval("NOT 1"), Outcome::kUndefined);
  EXPECT_EQ(Eval("1 AND true"), Outcome::kUndefined);
  EXPECT_EQ(Eval("'true' OR false"), Outcome::kUndefined);
  EXPECT_EQ(Eval("null OR false"), Outcome::kUndefined);
}

TEST(RoutingQuery, Precedence) {
  EXPECT_TRUE(Match("1 + 2 * 3 = 7"));
  EXPECT_TRUE(Match("(1 + 2) * 3 = 9"));
  EXPECT_TRUE(Match("10 - 4 - 3 = 3"));  // left-associative
  EXPECT_TRUE(Match("24 / 4 / 2 = 3"));  // left-associative
  EXPECT_TRUE(Match("2 * 3 % 4 = 2"));   // same level, left to right
  EXPECT_TRUE(Match("-2 * -2 = 4"));     // unary minus binds tightest
  EXPECT_TRUE(Match("1 + 1 = 2 AND 2 * 2 = 4"));
  // AND binds tighter than OR.
  EXPECT_TRUE(Match("true OR false AND false"));
  EXPECT_EQ(Eval("(true OR false) AND false"), Outcome::kFalse);
  EXPECT_TRUE(Match("false AND false OR true"));
  // NOT binds looser than comparison, tighter than AND.
  EXPECT_TRUE(Match("NOT 1 = 2"));
  EXPECT_EQ(Eval("NOT 1 = 1 AND true"), Outcome::kFalse);
  EXPECT_TRUE(Match("NOT false AND NOT false"));
  EXPECT_TRUE(Match("((((true))))"));
}

TEST(RoutingQuery, KeywordsAreCaseInsensitive) {
  EXPECT_TRUE(Match("TRUE And NOT FALSE oR false"));
  EXPECT_TRUE(Match("nOt false"));
}

// ---------------------------------------------------------------------------
// Functions

TEST(RoutingQuery, MathFunctions) {
  EXPECT_TRUE(Match("ABS(-4.5) = 4.5"));
  EXPECT_TRUE(Match("ABS(3) = 3"));
  EXPECT_TRUE(Match("EXP(0) = 1"));
  EXPECT_TRUE(Match("EXP(1) > 2.718 AND EXP(1) < 2.719"));
  EXPECT_TRUE(Match("POWER(2, 10) = 1024"));
  EXPECT_TRUE(Match("POWER(9, 0.5) = 3"));
  EXPECT_TRUE(Match("SQUARE(-3) = 9"));
  EXPECT_TRUE(Match("CEILING(1.2) = 2"));
  EXPECT_TRUE(Match("CEILING(-1.2) = -1"));
  EXPECT_TRUE(Match("FLOOR(1.8) = 1"));
  EXPECT_TRUE(Match("FLOOR(-1.2) = -2"));
  EXPECT_TRUE(Match("SIGN(-7) = -1"));
  EXPECT_TRUE(Match("SIGN(0) = 0"));
  EXPECT_TRUE(Match("SIGN(0.1) = 1"));
  EXPECT_TRUE(Match("SQRT(16) = 4"));
  EXPECT_TRUE(Match("SQRT($body.temp + 6) = 6"));
}

TEST(RoutingQuery, MathFunctionsOnBadInputAreUndefined) {
  EXPECT_EQ(Eval("ABS('1') = 1"), Outcome::kUndefined);
  EXPECT_EQ(Eval("SQRT(-1) = 0"), Outcome::kUndefined);
  EXPECT_EQ(Eval("IS_DEFINED(SQRT(-1))"), Outcome::kFalse);
  EXPECT_EQ(Eval("IS_DEFINED(EXP(1000))"), Outcome::kFalse);
  EXPECT_EQ(Eval("POWER(2, 'x') = 1"), Outcome::kUndefined);
  EXPECT_EQ(Eval("FLOOR(null) = 0"), Outcome::kUndefined);
  EXPECT_EQ(Eval("SIGN(missing) = 0"), Outcome::kUndefined);
  EXPECT_EQ(Eval("CEILING(true) = 1"), Outcome::kUndefined);
}

TEST(RoutingQuery, TypeFunctions) {
  EXPECT_TRUE(Match("IS_DEFINED(processingPath)"));
  EXPECT_EQ(Eval("IS_DEFINED(missing)"), Outcome::kFalse);
  EXPECT_TRUE(Match("NOT IS_DEFINED(missing)"));
  EXPECT_TRUE(Match("IS_DEFINED($messageId)"));
  EXPECT_TRUE(Match("IS_STRING(processingPath)"));
  EXPECT_TRUE(Match("IS_STRING(temperature)"));  // application properties are strings
  EXPECT_EQ(Eval("IS_NUMBER(temperature)"), Outcome::kFalse);
  EXPECT_TRUE(Match("IS_NUMBER(1)"));
  EXPECT_TRUE(Match("IS_BOOL(false)"));
  EXPECT_EQ(Eval("IS_BOOL('true')"), Outcome::kFalse);
  EXPECT_TRUE(Match("IS_NULL(null)"));
  EXPECT_EQ(Eval("IS_NULL(missing)"), Outcome::kFalse);
  EXPECT_EQ(Eval("IS_ARRAY('[]')"), Outcome::kFalse);
  EXPECT_EQ(Eval("IS_OBJECT('{}')"), Outcome::kFalse);
  for (const char* primitive : {"1", "'s'", "true", "null", "$body.name"}) {
    EXPECT_TRUE(Match(std::string("IS_PRIMITIVE(") + primitive + ")")) << primitive;
  }
  for (const char* other : {"missing", "$body.nested", "$body.matrix"}) {
    EXPECT_EQ(Eval(std::string("IS_PRIMITIVE(") + other + ")"), Outcome::kFalse) << other;
  }
}

TEST(RoutingQuery, AsNumber) {
  EXPECT_TRUE(Match("AS_NUMBER('42') = 42"));
  EXPECT_TRUE(Match("AS_NUMBER('-1.5e2') = -150"));
  EXPECT_TRUE(Match("AS_NUMBER(' 7 ') = 7"));
  EXPECT_TRUE(Match("AS_NUMBER(3) = 3"));
  for (const char* bad : {"''", "'abc'", "'0x10'", "'1,5'", "'+1'", "'1e'", "'.5'", "'inf'",
                          "'nan'", "'1e999'", "true", "null", "missing"}) {
    EXPECT_EQ(Eval(std::string("IS_DEFINED(AS_NUMBER(") + bad + "))"), Outcome::kFalse) << bad;
  }
}

TEST(RoutingQuery, StringFunctions) {
  EXPECT_TRUE(Match("CONCAT('a', 'b') = 'ab'"));
  EXPECT_TRUE(Match("CONCAT('a', 'b', 'c', processingPath) = 'abchot'"));
  EXPECT_TRUE(Match("LENGTH('hello') = 5"));
  EXPECT_TRUE(Match("LENGTH('') = 0"));
  EXPECT_TRUE(Match("LENGTH('héllo') = 5"));  // characters, not bytes
  EXPECT_TRUE(Match("LOWER('AbC') = 'abc'"));
  EXPECT_TRUE(Match("UPPER('AbC') = 'ABC'"));
  EXPECT_TRUE(Match("UPPER(processingPath) = 'HOT'"));
  EXPECT_TRUE(Match("INDEX_OF('abcabc', 'c') = 2"));
  EXPECT_TRUE(Match("INDEX_OF('abc', 'x') = -1"));
  EXPECT_TRUE(Match("INDEX_OF('abc', '') = 0"));
  EXPECT_TRUE(Match("INDEX_OF('héllo', 'l') = 2"));
  EXPECT_TRUE(Match("STARTS_WITH($connectionDeviceId, 'thermo')"));
  EXPECT_EQ(Eval("STARTS_WITH('abc', 'bc')"), Outcome::kFalse);
  EXPECT_TRUE(Match("ENDS_WITH($connectionDeviceId, '-7')"));
  EXPECT_EQ(Eval("ENDS_WITH('abc', 'ab')"), Outcome::kFalse);
  EXPECT_TRUE(Match("CONTAINS($body.name, 'oom')"));
  EXPECT_EQ(Eval("CONTAINS('abc', 'abcd')"), Outcome::kFalse);
  EXPECT_TRUE(Match("CONTAINS('abc', '')"));
}

TEST(RoutingQuery, Substring) {
  EXPECT_TRUE(Match("SUBSTRING('abcdef', 1, 3) = 'bcd'"));
  EXPECT_TRUE(Match("SUBSTRING('abcdef', 2) = 'cdef'"));
  EXPECT_TRUE(Match("SUBSTRING('abcdef', 0, 0) = ''"));
  EXPECT_TRUE(Match("SUBSTRING('abcdef', 4, 100) = 'ef'"));
  EXPECT_TRUE(Match("SUBSTRING('abcdef', 10) = ''"));
  EXPECT_TRUE(Match("SUBSTRING('abcdef', -1, 3) = 'ab'"));  // length counts from start
  EXPECT_TRUE(Match("SUBSTRING('abcdef', 1, -1) = ''"));
  EXPECT_TRUE(Match("SUBSTRING('héllo', 1, 2) = 'él'"));
  EXPECT_TRUE(Match("SUBSTRING($connectionDeviceId, 0, 10) = 'thermostat'"));
  EXPECT_EQ(Eval("SUBSTRING('abc', 1.5) = 'bc'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("SUBSTRING('abc', '1') = 'bc'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("SUBSTRING(123, 1) = '23'"), Outcome::kUndefined);
}

TEST(RoutingQuery, StringFunctionsOnNonStringsAreUndefined) {
  EXPECT_EQ(Eval("CONCAT('a', 1) = 'a1'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("CONCAT('a', missing) = 'a'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("LENGTH(123) = 3"), Outcome::kUndefined);
  EXPECT_EQ(Eval("LOWER(null) = null"), Outcome::kUndefined);
  EXPECT_EQ(Eval("UPPER(true) = 'TRUE'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("INDEX_OF('abc', 1) = -1"), Outcome::kUndefined);
  EXPECT_EQ(Eval("STARTS_WITH(missing, 'a')"), Outcome::kUndefined);
  EXPECT_EQ(Eval("ENDS_WITH(1, '1')"), Outcome::kUndefined);
  EXPECT_EQ(Eval("CONTAINS($body.temp, '3')"), Outcome::kUndefined);
  EXPECT_TRUE(Match("NOT IS_DEFINED(LENGTH($body.nested))"));
}

TEST(RoutingQuery, FunctionNamesIgnoreCase) {
  EXPECT_TRUE(Match("lower('A') = 'a'"));
  EXPECT_TRUE(Match("Is_Defined(processingPath)"));
  EXPECT_TRUE(Match("length ('abc') = 3"));
}

TEST(RoutingQuery, NestedFunctionCalls) {
  EXPECT_TRUE(Match("UPPER(SUBSTRING(CONCAT(processingPath, '-path'), 0, 3)) = 'HOT'"));
  EXPECT_TRUE(Match("ABS(FLOOR(-2.5)) + SQUARE(SIGN(-1)) = 4"));
}

// ---------------------------------------------------------------------------
// Parse errors

TEST(RoutingQueryParse, ErrorCarriesPositionAndMessage) {
  const ParseError e = Error("a = ");
  EXPECT_EQ(e.position, 5u);
  EXPECT_NE(e.message.find("end of condition"), std::string::npos) << e.message;
  EXPECT_EQ(e.ToString().rfind("position 5: ", 0), 0u) << e.ToString();
}

TEST(RoutingQueryParse, UnbalancedParentheses) {
  ParseError e = Error("(a = 1");
  EXPECT_EQ(e.position, 7u);
  EXPECT_NE(e.message.find("')'"), std::string::npos) << e.message;
  e = Error("a = 1)");
  EXPECT_EQ(e.position, 6u);
  EXPECT_NE(e.message.find("after the end"), std::string::npos) << e.message;
  EXPECT_EQ(Error("()").position, 2u);
}

TEST(RoutingQueryParse, DoubledQuoteIsNotAnEscape) {
  EXPECT_EQ(Error("'it''s' = 'x'").position, 5u);
}

TEST(RoutingQueryParse, UnterminatedString) {
  const ParseError e = Error("a = 'abc");
  EXPECT_EQ(e.position, 5u);
  EXPECT_NE(e.message.find("unterminated"), std::string::npos) << e.message;
  EXPECT_EQ(Error("a = \"abc'").position, 5u);
  EXPECT_EQ(Error("a = 'abc\\'").position, 5u);
  EXPECT_EQ(Error("a = 'abc\\").position, 5u);
}

TEST(RoutingQueryParse, BadEscapes) {
  ParseError e = Error("a = 'x\\q'");
  EXPECT_EQ(e.position, 7u);
  EXPECT_NE(e.message.find("escape"), std::string::npos) << e.message;
  EXPECT_EQ(Error("a = '\\u12'").position, 6u);
  EXPECT_EQ(Error("a = '\\u12G4'").position, 6u);
  EXPECT_EQ(Error("a = '\\uD800'").position, 6u);  // lone high surrogate
  EXPECT_EQ(Error("a = '\\uDC00'").position, 6u);  // lone low surrogate
  EXPECT_EQ(Error("a = '\\uD800\\u0041'").position, 6u);
}

TEST(RoutingQueryParse, BadNumbers) {
  EXPECT_EQ(Error("a = 0x").position, 5u);
  EXPECT_EQ(Error("a = 0xG1").position, 5u);
  EXPECT_EQ(Error("a = 0x1G").position, 5u);
  EXPECT_EQ(Error("a = 1e").position, 5u);
  EXPECT_EQ(Error("a = 1e+").position, 5u);
  EXPECT_EQ(Error("a = 12abc").position, 5u);
  EXPECT_EQ(Error("a = 1.2.3").position, 5u);
  EXPECT_EQ(Error("a = 1e999").position, 5u);
  EXPECT_EQ(Error("a = 0x11112222333344445").position, 5u);
}

TEST(RoutingQueryParse, UnknownFunctionAndWrongArity) {
  ParseError e = Error("FOO(1) = 1");
  EXPECT_EQ(e.position, 1u);
  EXPECT_NE(e.message.find("unknown function 'FOO'"), std::string::npos) << e.message;
  e = Error("x = POWER(2)");
  EXPECT_EQ(e.position, 5u);
  EXPECT_NE(e.message.find("takes 2 arguments, got 1"), std::string::npos) << e.message;
  EXPECT_EQ(Error("ABS() = 1").position, 1u);
  EXPECT_EQ(Error("ABS(1, 2) = 1").position, 1u);
  EXPECT_EQ(Error("CONCAT('a') = 'a'").position, 1u);
  EXPECT_EQ(Error("SUBSTRING('a') = 'a'").position, 1u);
  EXPECT_EQ(Error("SUBSTRING('a', 1, 2, 3) = 'a'").position, 1u);
  EXPECT_EQ(Error("LENGTH('a' 'b')").position, 12u);
  EXPECT_EQ(Error("LENGTH('a',)").position, 12u);
  EXPECT_EQ(Error("$body.a(1)").position, 1u);
}

TEST(RoutingQueryParse, MisplacedOperatorsAndKeywords) {
  EXPECT_EQ(Error("= 1").position, 1u);
  EXPECT_EQ(Error("a = = 1").position, 5u);
  EXPECT_EQ(Error("a == 1").position, 3u);
  EXPECT_EQ(Error("a ! 1").position, 3u);
  EXPECT_EQ(Error("AND a = 1").position, 1u);
  EXPECT_EQ(Error("a = 1 AND").position, 10u);
  EXPECT_EQ(Error("a = 1 OR OR b = 1").position, 10u);
  EXPECT_EQ(Error("a = NOT b").position, 5u);
  EXPECT_EQ(Error("a = 1 b = 2").position, 7u);
  EXPECT_EQ(Error("a = 1,").position, 6u);
  EXPECT_EQ(Error("NOT").position, 4u);
}

TEST(RoutingQueryParse, BadCharactersAndNames) {
  ParseError e = Error("a = 1 # comment");
  EXPECT_EQ(e.position, 7u);
  EXPECT_NE(e.message.find("'#'"), std::string::npos) << e.message;
  EXPECT_EQ(Error("a@b = 1").position, 2u);
  EXPECT_EQ(Error("a; = 1").position, 2u);
  EXPECT_EQ(Error("$ = 1").position, 1u);
  EXPECT_EQ(Error("$body. a = 1").position, 7u);
  EXPECT_EQ(Error("$body.a. = 1").position, 9u);
  EXPECT_EQ(Error("$body.a[x] = 1").position, 8u);
  EXPECT_EQ(Error("$body.a[-1] = 1").position, 8u);
  EXPECT_EQ(Error("$body.a[1 = 1").position, 8u);
  EXPECT_EQ(Error("a[0] = 1").position, 2u);
  EXPECT_EQ(Error("$messageId[0] = 1").position, 11u);
  EXPECT_EQ(Error("a = {}").position, 5u);
}

TEST(RoutingQueryParse, PositionCountsCharactersNotBytes) {
  // 'é' is two bytes; '#' is the 11th character, the 12th byte.
  const ParseError e = Error("a = 'é' = #");
  EXPECT_EQ(e.position, 11u);
}

TEST(RoutingQueryParse, NestingIsBounded) {
  const std::string ok = std::string(90, '(') + "true" + std::string(90, ')');
  EXPECT_TRUE(Match(ok));
  const std::string deep = std::string(200, '(') + "true" + std::string(200, ')');
  const ParseError e = Error(deep);
  EXPECT_EQ(e.position, 101u);
  EXPECT_NE(e.message.find("nested"), std::string::npos) << e.message;
  EXPECT_FALSE(std::holds_alternative<Query>(Query::Parse(std::string(100000, '-') + "1")));
  EXPECT_FALSE(std::holds_alternative<Query>(Query::Parse(std::string(100000, '(') + "1")));
}

TEST(RoutingQueryParse, LongOperatorChainsAreBounded) {
  std::string chain = "1";
  for (int i = 0; i < 400; ++i) chain += " + 1";
  EXPECT_TRUE(Match(chain + " = 401"));
  std::string too_long = "1";
  for (int i = 0; i < 100000; ++i) too_long += "+1";
  const auto parsed = Query::Parse(too_long + " = 0");
  ASSERT_TRUE(std::holds_alternative<ParseError>(parsed));
  EXPECT_NE(std::get<ParseError>(parsed).message.find("too complex"), std::string::npos);
}

TEST(RoutingQueryParse, ValidConditionsParse) {
  for (const char* c : {
           "$body.a.b[0][1].c = 1",
           "$iothub-connection-device-id = 'x'",
           "a.b.c = 'x'",
           "a_b = 1",
           "_a = 1",
           "$1 = 1",
           "x -1 = 0",
           "\t\r\na\n=\n1\n",
           "NOT(a = 1)",
           "$twin.tags.x = 1",
           "$twin.properties.reported.a[3] = 1",
       }) {
    const auto parsed = Query::Parse(c);
    EXPECT_TRUE(std::holds_alternative<Query>(parsed))
        << c << ": " << std::get<ParseError>(parsed).ToString();
  }
}

}  // namespace
}  // namespace ferry::routing
