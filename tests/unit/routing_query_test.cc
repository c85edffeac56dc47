#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/routing/query.h"

namespace ferry::routing {
namespace {

// A telemetry message as the d2c decoder produces it: wire-named system
// properties, string application properties, a UTF-8 JSON body.
QueryInput Telemetry() {
  QueryInput in;
  in.system_properties = {
      {"content-type", "application/json"},
      {"content-encoding", "utf-8"},
      {"message-id", "m-1"},
      {"correlation-id", "c-1"},
      {"iothub-connection-device-id", "thermostat-7"},
      {"iothub-enqueuedtime", "2026-11-26T10:00:00.250Z"},
      {"dt-dataschema", "dtmi:com:example;1"},
  };
  in.application_properties = {
      {"processingPath", "hot"},
      {"temperature", "21.5"},
      {"iothub-message-schema", "deviceLifecycleNotification"},
      {"$custom", "app-dollar"},
      {"empty", ""},
  };
  in.body = R"({
    "temp": 30,
    "humidity": 55.5,
    "name": "Room 1",
    "on": true,
    "nothing": null,
    "nested": {"a": {"b": "deep"}},
    "Weather": {"HistoricalData": [{"Month": "Feb", "Temp": 3}, {"Month": "Mar", "Temp": 9}]},
    "matrix": [[1, 2], [3, 4]],
    "x-y": 7,
    "Case": "upper"
  })";
  return in;
}

Outcome Eval(std::string_view condition, const QueryInput& in = Telemetry()) {
  auto parsed = Query::Parse(condition);
  if (const auto* e = std::get_if<ParseError>(&parsed)) {
    ADD_FAILURE() << "'" << condition << "' does not parse: " << e->ToString();
    return Outcome::kUndefined;
  }
  Evaluation message(in);
  return std::get<Query>(parsed).Evaluate(message);
}

bool Match(std::string_view condition, const QueryInput& in = Telemetry()) {
  return Eval(condition, in) == Outcome::kTrue;
}

ParseError Error(std::string_view condition) {
  auto parsed = Query::Parse(condition);
  if (const auto* e = std::get_if<ParseError>(&parsed)) return *e;
  ADD_FAILURE() << "'" << condition << "' parsed but should not";
  return {};
}

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
// Properties

TEST(RoutingQuery, SystemPropertiesByQueryName) {
  EXPECT_TRUE(Match("$contentType = 'application/json'"));
  EXPECT_TRUE(Match("$contentEncoding = 'utf-8'"));
  EXPECT_TRUE(Match("$messageId = 'm-1'"));
  EXPECT_TRUE(Match("$correlationId = 'c-1'"));
  EXPECT_TRUE(Match("$connectionDeviceId = 'thermostat-7'"));
  EXPECT_TRUE(Match("$iothub-enqueuedtime = '2026-11-26T10:00:00.250Z'"));
  EXPECT_TRUE(Match("$iothub-enqueuedtime > '2026-11-26T09:00:00Z'"));
  EXPECT_TRUE(Match("$dt-dataschema = 'dtmi:com:example;1'"));
}

TEST(RoutingQuery, SystemPropertiesByWireNameAndAnyCase) {
  EXPECT_TRUE(Match("$content-type = 'application/json'"));
  EXPECT_TRUE(Match("$iothub-connection-device-id = 'thermostat-7'"));
  EXPECT_TRUE(Match("$CONTENTTYPE = 'application/json'"));
  EXPECT_TRUE(Match("$ConnectionDeviceId = 'thermostat-7'"));
  EXPECT_TRUE(Match("$Message-Id = 'm-1'"));
}

TEST(RoutingQuery, AnyOtherSystemProperty) {
  QueryInput in = Telemetry();
  in.system_properties["iothub-connection-module-id"] = "mod-1";
  in.system_properties["x-opt-custom"] = "v";
  EXPECT_TRUE(Match("$connectionModuleId = 'mod-1'", in));
  EXPECT_TRUE(Match("$x-opt-custom = 'v'", in));
  EXPECT_EQ(Eval("$connectionModuleId = 'mod-1'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("$nope = 'x'"), Outcome::kUndefined);
}

TEST(RoutingQuery, ContentTypeFieldsWinOverSystemProperties) {
  QueryInput in = Telemetry();
  in.content_type = "text/plain";
  in.content_encoding = "ascii";
  EXPECT_TRUE(Match("$contentType = 'text/plain'", in));
  EXPECT_TRUE(Match("$content-encoding = 'ascii'", in));
  EXPECT_EQ(Eval("$body.temp = 30", in), Outcome::kUndefined);
}

TEST(RoutingQuery, ApplicationPropertiesByBareName) {
  EXPECT_TRUE(Match("processingPath = 'hot'"));
  EXPECT_TRUE(Match("iothub-message-schema = 'deviceLifecycleNotification'"));
  EXPECT_TRUE(Match("empty = ''"));
  EXPECT_EQ(Eval("processingPath = 'cold'"), Outcome::kFalse);
  EXPECT_EQ(Eval("missing = 'hot'"), Outcome::kUndefined);
  // System properties are not visible by bare name.
  EXPECT_EQ(Eval("content-type = 'application/json'"), Outcome::kUndefined);
}

TEST(RoutingQuery, ApplicationPropertyNamesIgnoreCase) {
  EXPECT_TRUE(Match("processingpath = 'hot'"));
  EXPECT_TRUE(Match("PROCESSINGPATH = 'hot'"));
  EXPECT_TRUE(Match("ProcessingPath = 'hot'"));
  EXPECT_TRUE(Match("IoTHub-Message-Schema = 'deviceLifecycleNotification'"));
}

TEST(RoutingQuery, ExactCaseWinsWhenNamesDifferOnlyInCase) {
  QueryInput in;
  in.application_properties = {{"Level", "upper"}, {"level", "lower"}};
  EXPECT_TRUE(Match("level = 'lower'", in));
  EXPECT_TRUE(Match("Level = 'upper'", in));
}

TEST(RoutingQuery, DollarNameFallsBackToApplicationProperty) {
  EXPECT_TRUE(Match("$custom = 'app-dollar'"));
  EXPECT_TRUE(Match("$CUSTOM = 'app-dollar'"));
  QueryInput in = Telemetry();
  in.system_properties["custom"] = "system";
  EXPECT_TRUE(Match("$custom = 'system'", in));  // system properties first
}

TEST(RoutingQuery, DottedApplicationPropertyName) {
  QueryInput in;
  in.application_properties = {{"a.b", "dotted"}};
  EXPECT_TRUE(Match("a.b = 'dotted'", in));
}

TEST(RoutingQuery, ApplicationPropertiesAreStringsWithoutImplicitConversion) {
  EXPECT_EQ(Eval("temperature > 20"), Outcome::kUndefined);
  EXPECT_EQ(Eval("temperature = 21.5"), Outcome::kUndefined);
  EXPECT_TRUE(Match("temperature = '21.5'"));
  EXPECT_TRUE(Match("AS_NUMBER(temperature) > 20"));
  EXPECT_TRUE(Match("AS_NUMBER(temperature) = 21.5"));
}

// ---------------------------------------------------------------------------
// $body

TEST(RoutingQuery, BodyPaths) {
  EXPECT_TRUE(Match("$body.temp = 30"));
  EXPECT_TRUE(Match("$body.temp > 25 AND $body.humidity < 60"));
  EXPECT_TRUE(Match("$body.humidity = 55.5"));
  EXPECT_TRUE(Match("$body.name = 'Room 1'"));
  EXPECT_TRUE(Match("$body.on = true"));
  EXPECT_TRUE(Match("$body.on"));
  EXPECT_TRUE(Match("$body.nothing = null"));
  EXPECT_TRUE(Match("$body.nested.a.b = 'deep'"));
  EXPECT_TRUE(Match("$body.x-y = 7"));
  EXPECT_TRUE(Match("$BODY.temp = 30"));  // `$body` itself is a keyword
}

TEST(RoutingQuery, BodyPathsAreCaseSensitive) {
  EXPECT_TRUE(Match("$body.Case = 'upper'"));
  EXPECT_EQ(Eval("$body.case = 'upper'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("$body.TEMP = 30"), Outcome::kUndefined);
}

TEST(RoutingQuery, BodyArrayIndexing) {
  EXPECT_TRUE(Match("$body.Weather.HistoricalData[0].Month = 'Feb'"));
  EXPECT_TRUE(Match("$body.Weather.HistoricalData[1].Month = 'Mar'"));
  EXPECT_TRUE(
      Match("$body.Weather.HistoricalData[1].Temp - $body.Weather.HistoricalData[0].Temp = 6"));
  EXPECT_TRUE(Match("$body.matrix[1][0] = 3"));
  EXPECT_TRUE(Match("$body.matrix[0][1] = 2"));
  EXPECT_EQ(Eval("$body.Weather.HistoricalData[2].Month = 'Apr'"), Outcome::kUndefined);
  EXPECT_EQ(Eval("$body.temp[0] = 30"), Outcome::kUndefined);
  EXPECT_EQ(Eval("$body.nested[0] = 1"), Outcome::kUndefined);
  EXPECT_EQ(Eval("$body.matrix.a = 1"), Outcome::kUndefined);
}

TEST(RoutingQuery, WholeBodyIsNotAddressable) {
  QueryInput in = Telemetry();
  in.body = "[1, 2, 3]";
  EXPECT_EQ(Eval("$body[0] = 1", in), Outcome::kUndefined);
  EXPECT_EQ(Eval("IS_DEFINED($body)", in), Outcome::kFalse);
  EXPECT_EQ(Eval("IS_DEFINED($body)"), Outcome::kFalse);
}

TEST(RoutingQuery, BodyTypesThroughTypeFunctions) {
  EXPECT_TRUE(Match("IS_OBJECT($body.nested)"));
  EXPECT_TRUE(Match("IS_ARRAY($body.matrix)"));
  EXPECT_TRUE(Match("IS_ARRAY($body.matrix[0])"));
  EXPECT_TRUE(Match("IS_NUMBER($body.temp)"));
  EXPECT_TRUE(Match("IS_STRING($body.name)"));
  EXPECT_TRUE(Match("IS_BOOL($body.on)"));
  EXPECT_TRUE(Match("IS_NULL($body.nothing)"));
  EXPECT_TRUE(Match("IS_DEFINED($body.nothing)"));
  EXPECT_EQ(Eval("IS_DEFINED($body.absent)"), Outcome::kFalse);
}

TEST(RoutingQuery, BodyNeedsJsonContentType) {
  QueryInput in = Telemetry();
  in.system_properties["content-type"] = "text/plain";
  EXPECT_EQ(Eval("$body.temp = 30", in), Outcome::kUndefined);
  in.system_properties.erase("content-type");
  EXPECT_EQ(Eval("$body.temp = 30", in), Outcome::kUndefined);
  // Properties still route.
  EXPECT_TRUE(Match("processingPath = 'hot'", in));
  EXPECT_TRUE(Match("processingPath = 'hot' OR $body.temp = 30", in));
}

TEST(RoutingQuery, BodyNeedsUtfEncoding) {
  for (const char* encoding : {"utf-8", "UTF-8", "Utf-8", " utf-8 "}) {
    QueryInput in = Telemetry();
    in.system_properties["content-encoding"] = encoding;
    EXPECT_TRUE(Match("$body.temp = 30", in)) << encoding;
  }
  for (const char* encoding : {"ascii", "gzip", "utf8", "iso-8859-1", ""}) {
    QueryInput in = Telemetry();
    in.system_properties["content-encoding"] = encoding;
    EXPECT_EQ(Eval("$body.temp = 30", in), Outcome::kUndefined) << encoding;
  }
  QueryInput in = Telemetry();
  in.system_properties.erase("content-encoding");
  EXPECT_EQ(Eval("$body.temp = 30", in), Outcome::kUndefined);
}

TEST(RoutingQuery, BodyContentTypeIgnoresCase) {
  QueryInput in = Telemetry();
  in.system_properties["content-type"] = "Application/JSON";
  EXPECT_TRUE(Match("$body.temp = 30", in));
  in.system_properties["content-type"] = "application/json; charset=utf-8";
  EXPECT_EQ(Eval("$body.temp = 30", in), Outcome::kUndefined);
}

TEST(RoutingQuery, BodyInUtf16AndUtf32) {
  const std::u16string text16 = u"{\"t\": \"\u00e9\", \"n\": 5}";
  std::string le16;
  std::string be16 = "\xFE\xFF";
  for (char16_t c : text16) {
    le16 += static_cast<char>(c & 0xFF);
    le16 += static_cast<char>(c >> 8);
    be16 += static_cast<char>(c >> 8);
    be16 += static_cast<char>(c & 0xFF);
  }
  QueryInput in = Telemetry();
  in.system_properties["content-encoding"] = "utf-16";
  in.body = le16;
  EXPECT_TRUE(Match("$body.n = 5 AND $body.t = 'é'", in));
  in.body = be16;
  EXPECT_TRUE(Match("$body.n = 5 AND $body.t = 'é'", in));
  in.body = le16 + "x";  // odd length
  EXPECT_EQ(Eval("$body.n = 5", in), Outcome::kUndefined);

  std::string le32;
  for (char16_t c : text16) {
    le32 += static_cast<char>(c & 0xFF);
    le32 += static_cast<char>(c >> 8);
    le32 += std::string(2, '\0');
  }
  in.system_properties["content-encoding"] = "UTF-32";
  in.body = le32;
  EXPECT_TRUE(Match("$body.n = 5 AND $body.t = 'é'", in));
}

TEST(RoutingQuery, Utf8BodyWithByteOrderMark) {
  QueryInput in = Telemetry();
  in.body = "\xEF\xBB\xBF{\"temp\": 30}";
  EXPECT_TRUE(Match("$body.temp = 30", in));
}

TEST(RoutingQuery, InvalidJsonBodyIsUndefinedNotAnError) {
  QueryInput in = Telemetry();
  in.body = "{not json";
  EXPECT_EQ(Eval("$body.temp = 30", in), Outcome::kUndefined);
  EXPECT_TRUE(Match("$messageId = 'm-1'", in));
  in.body = "";
  EXPECT_EQ(Eval("$body.temp = 30", in), Outcome::kUndefined);
  in.body = "42";
  EXPECT_EQ(Eval("$body.temp = 30", in), Outcome::kUndefined);
}

TEST(RoutingQuery, OneEvaluationServesManyQueries) {
  const QueryInput in = Telemetry();
  Evaluation message(in);
  int matched = 0;
  for (const char* c :
       {"$body.temp = 30", "$body.name = 'Room 1'", "$body.temp = 31", "processingPath = 'hot'"}) {
    auto q = Query::Parse(c);
    ASSERT_TRUE(std::holds_alternative<Query>(q)) << c;
    matched += std::get<Query>(q).Matches(message) ? 1 : 0;
  }
  EXPECT_EQ(matched, 3);
}

TEST(RoutingQuery, MatchesOnInputDirectly) {
  auto q = Query::Parse("$body.temp = 30");
  ASSERT_TRUE(std::holds_alternative<Query>(q));
  EXPECT_TRUE(std::get<Query>(q).Matches(Telemetry()));
  EXPECT_FALSE(std::get<Query>(q).Matches(QueryInput{}));
}

TEST(RoutingQuery, QueryIsCopyableAndSharedAcrossThreads) {
  auto parsed = Query::Parse("$body.temp = 30 AND LOWER(processingPath) = 'hot'");
  ASSERT_TRUE(std::holds_alternative<Query>(parsed));
  const Query q = std::get<Query>(parsed);
  const Query copy = q;
  std::vector<std::thread> threads;
  std::vector<int> hits(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const QueryInput in = Telemetry();
      for (int i = 0; i < 200; ++i) hits[t] += (t % 2 ? q : copy).Matches(in) ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  for (int h : hits) EXPECT_EQ(h, 200);
}

// ---------------------------------------------------------------------------
// $twin

TEST(RoutingQuery, TwinPathsIgnoreCase) {
  QueryInput in = Telemetry();
  in.twin = R"({"tags": {"Building": "43"},
               "properties": {"desired": {"telemetryConfig": {"sendFrequency": "5m"}},
                              "reported": {"batteryLevel": 80}}})";
  EXPECT_TRUE(Match("$twin.tags.building = '43'", in));
  EXPECT_TRUE(Match("$twin.TAGS.Building = '43'", in));
  EXPECT_TRUE(Match("$twin.properties.desired.telemetryConfig.sendFrequency = '5m'", in));
  EXPECT_TRUE(Match("$twin.properties.reported.batteryLevel > 50", in));
  EXPECT_EQ(Eval("$twin.tags.floor = 1", in), Outcome::kUndefined);
  EXPECT_EQ(Eval("$twin.tags.building = '43'"), Outcome::kUndefined);  // no twin given
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
// Realistic conditions

TEST(RoutingQuery, DocumentationExamples) {
  QueryInput in = Telemetry();
  in.system_properties["content-encoding"] = "UTF-8";
  EXPECT_TRUE(Match("$contentEncoding = 'UTF-8'", in));
  EXPECT_TRUE(Match("processingPath = 'hot'", in));
  EXPECT_TRUE(Match("$body.Weather.HistoricalData[0].Month = 'Feb'", in));
  EXPECT_TRUE(
      Match("$contentType = 'application/json' AND $contentEncoding = 'UTF-8' AND "
            "$body.temp > 20 AND (processingPath = 'hot' OR processingPath = 'warm')",
            in));
  EXPECT_TRUE(Match("$body.temp > 29 AND NOT IS_DEFINED(alert) OR CONTAINS($messageId, 'x')", in));
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
