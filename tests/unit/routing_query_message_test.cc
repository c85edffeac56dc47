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

}  // namespace
}  // namespace ferry::routing
