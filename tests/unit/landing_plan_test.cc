#include "core/d2c/landing_plan.h"

#include <string>
#include <variant>

#include <gtest/gtest.h>

// The landing planner without PostgreSQL or Kafka: what a batch becomes for
// a given route set, store days and checkpoint. The pg tests
// (event_store_pgtest) check that the executor applies plans as written.

namespace ferry::d2c {
namespace {

const TimePoint kNow = *ParseTime("2026-11-26T12:00:00Z");
const std::chrono::sys_days kToday = std::chrono::floor<std::chrono::days>(kNow);
const DayRange kDays{kToday - std::chrono::days(2), kToday + std::chrono::days(1)};

KafkaRecord Record(std::int64_t offset, std::string enqueued = "2026-11-26T10:00:00Z",
                   std::vector<KafkaHeader> headers = {}, std::string body = "{\"t\":1}") {
  KafkaRecord r;
  r.topic = "ferry.d2c";
  r.partition = 3;
  r.offset = offset;
  r.key = "dev-1";
  r.value = std::move(body);
  r.headers = std::move(headers);
  r.headers.push_back({"iothub-enqueuedtime", std::move(enqueued)});
  return r;
}

routing::Query Parsed(const std::string& condition) {
  auto q = routing::Query::Parse(condition);
  if (auto* error = std::get_if<routing::ParseError>(&q)) {
    ADD_FAILURE() << error->ToString();
    return std::get<routing::Query>(routing::Query::Parse("true"));
  }
  return std::get<routing::Query>(std::move(q));
}

// Endpoints: 0 the store, 1 Kafka `hot` (enriched with the hub name and the
// device's status), 2 Kafka `all`. Routes: temperature > 30 -> hot, every
// message -> all, `store = 'yes'` -> the store; fallback on.
routing::RouteSet Routes() {
  std::vector<routing::EndpointTarget> endpoints = {
      {routing::kStoreEndpoint, false, "", {}},
      {"hot", true, "t.hot", {{"hub", "$iothubname"}, {"status", "$device.status"}}},
      {"all", true, "t.all", {}},
  };
  std::vector<routing::CompiledRoute> routes;
  routes.push_back({"r-hot", false, Parsed("$body.t > 30"), 1});
  routes.push_back({"r-all", false, Parsed("true"), 2});
  routes.push_back({"r-store", false, Parsed("store = 'yes'"), 0});
  routes.push_back({"r-odd", false, Parsed("missing.x = 1"), 0});
  return routing::RouteSet(7, true, std::move(endpoints), std::move(routes));
}

KafkaRecord Json(std::int64_t offset, int t, bool store) {
  std::vector<KafkaHeader> h = {{"content-type", "application/json"},
                                {"content-encoding", "utf-8"}};
  if (store) h.push_back({"store", "yes"});
  return Record(offset, "2026-11-26T10:00:00Z", std::move(h), "{\"t\":" + std::to_string(t) + "}");
}

TEST(LandingPlan, WithoutRoutesEveryDeviceMessageGoesToTheStore) {
  const std::vector<KafkaRecord> batch = {Record(10), Record(11), Record(12)};
  const auto& routes = *routing::RouteSet::StoreEverything();
  const Classified c = Classify(batch, 0, batch.size(), kNow, kDays, routes);
  const LandingPlan p = Plan(c, {}, {}, routes, "hub");
  ASSERT_EQ(p.fresh.size(), 3u);
  EXPECT_EQ(p.fresh[0].record->offset, 10);
  EXPECT_EQ(p.fresh[2].event->device_id, "dev-1");
  EXPECT_TRUE(p.sends.empty());
  EXPECT_TRUE(p.dead_letters.empty());
  EXPECT_EQ(p.next_offset, 13);
  EXPECT_EQ(p.dropped, 0u);
}

TEST(LandingPlan, WhatTheCheckpointCoversIsSkippedAndBelowTheHighOffsetIsAReplay) {
  const std::vector<KafkaRecord> batch = {Record(10), Record(11), Record(12), Record(13)};
  const auto& routes = *routing::RouteSet::StoreEverything();
  const Classified c = Classify(batch, 0, batch.size(), kNow, kDays, routes);
  const LandingPlan p = Plan(c, CheckpointState{11, 13}, {}, routes, "hub");
  ASSERT_EQ(p.replayed.size(), 2u);  // 11 and 12
  EXPECT_EQ(p.replayed[0].record->offset, 11);
  ASSERT_EQ(p.fresh.size(), 1u);
  EXPECT_EQ(p.fresh[0].record->offset, 13);
  EXPECT_EQ(p.next_offset, 14);
}

TEST(LandingPlan, RoutesSendToKafkaEndpointsWithEnrichmentsAndCountUndefinedConditions) {
  const std::vector<KafkaRecord> batch = {Json(1, 35, false), Json(2, 20, true)};
  const routing::RouteSet routes = Routes();
  const Classified c = Classify(batch, 0, batch.size(), kNow, kDays, routes);
  // Undefined for offset 1; offset 2 already goes to the store by r-store,
  // so r-odd (to the store too) is not evaluated for it.
  EXPECT_EQ(c.undefined.at("r-odd"), 1u);
  EXPECT_EQ(DevicesToEnrich(c, {}), (std::vector<std::string>{"dev-1", "dev-1"}));
  const LandingPlan p = Plan(c, {}, {{"dev-1", {{"status", "enabled"}}}}, routes, "hub");
  // Offset 1: hot and all; offset 2: all and the store.
  ASSERT_EQ(p.sends.size(), 3u);
  EXPECT_EQ(p.sends[0].topic, "t.hot");
  EXPECT_EQ(p.sends[0].key, "dev-1");
  const auto has = [](const OutgoingRecord& r, const std::string& k, const std::string& v) {
    for (const auto& [name, value] : r.headers) {
      if (name == k) return value == v;
    }
    return false;
  };
  EXPECT_TRUE(has(p.sends[0], "hub", "hub"));
  EXPECT_TRUE(has(p.sends[0], "status", "enabled"));
  EXPECT_EQ(p.sends[1].topic, "t.all");
  EXPECT_EQ(p.routed.at("hot"), 1u);
  EXPECT_EQ(p.routed.at("all"), 2u);
  ASSERT_EQ(p.fresh.size(), 1u);
  EXPECT_EQ(p.fresh[0].record->offset, 2);
  // Offset 1 went to Kafka only: routed elsewhere, not dropped.
  EXPECT_EQ(p.routed_elsewhere, 1);
  EXPECT_EQ(p.dropped, 0u);
}

TEST(LandingPlan, AnEndpointTheEnrichmentsPushPast256KbIsLeftOutAndAMessageWithNoneLeftDrops) {
  std::vector<routing::EndpointTarget> endpoints = {
      {"big", true, "t.big", {{"pad", std::string(2000, 'x')}}}};
  std::vector<routing::CompiledRoute> rs;
  rs.push_back({"r-big", false, Parsed("true"), 0});
  const routing::RouteSet routes(1, false, std::move(endpoints), std::move(rs));
  const std::vector<KafkaRecord> batch = {
      Record(5, "2026-11-26T10:00:00Z", {}, std::string(kMaxD2cMessageBytes - 1000, 'b')),
      Record(6)};
  const Classified c = Classify(batch, 0, batch.size(), kNow, kDays, routes);
  const LandingPlan p = Plan(c, {}, {}, routes, "hub");
  ASSERT_EQ(p.oversized.size(), 1u);
  EXPECT_EQ(p.oversized[0].endpoint, "big");
  EXPECT_EQ(p.oversized[0].record->offset, 5);
  EXPECT_GT(p.oversized[0].bytes, kMaxD2cMessageBytes);
  ASSERT_EQ(p.sends.size(), 1u);
  EXPECT_EQ(p.dropped, 1u);
  EXPECT_EQ(p.dropped_counted, 1);
  EXPECT_EQ(p.routed_elsewhere, 1);
}

TEST(LandingPlan, TheStoreTakesOnlyDaysItHasAndKafkaEndpointsStillGetTheRest) {
  const routing::RouteSet routes = Routes();
  std::vector<KafkaRecord> batch = {
      Record(1, "2026-11-01T00:00:00Z", {{"store", "yes"}}),   // before the oldest day
      Record(2, "2026-12-25T00:00:00Z", {{"store", "yes"}}),   // after the newest day
      Record(3, "2026-11-24T00:00:00Z", {{"store", "yes"}})};  // the oldest day
  const Classified c = Classify(batch, 0, batch.size(), kNow, kDays, routes);
  ASSERT_TRUE(c.records[0].dead);
  EXPECT_EQ(c.records[0].dead->reason, DeadLetterReason::kOutOfRetention);
  EXPECT_NE(c.records[0].dead->detail.find("2026-11-24"), std::string::npos);
  EXPECT_EQ(c.records[1].dead->reason, DeadLetterReason::kFutureTimestamp);
  EXPECT_FALSE(c.records[2].dead);
  const LandingPlan p = Plan(c, {}, {}, routes, "hub");
  EXPECT_EQ(p.dead_letters.size(), 2u);
  EXPECT_EQ(p.fresh.size(), 1u);
  EXPECT_EQ(p.routed.at("all"), 3u);  // the dead-lettered ones too
  // On a replay the one past retention is skipped, the other kept if new.
  const LandingPlan replay = Plan(c, CheckpointState{std::nullopt, 10}, {}, routes, "hub");
  EXPECT_TRUE(replay.dead_letters.empty());
  EXPECT_EQ(replay.replay_skipped, 1);
  ASSERT_EQ(replay.replayed_dead_letters.size(), 1u);
  EXPECT_EQ(replay.replayed_dead_letters[0]->record->offset, 2);
}

TEST(LandingPlan, UndecodableRecordsAreDeadLettersAndRefusedRowsBecomeDataErrors) {
  KafkaRecord no_device = Record(1);
  no_device.key.reset();
  const std::vector<KafkaRecord> batch = {no_device, Json(2, 35, true)};
  const routing::RouteSet routes = Routes();
  const Classified c = Classify(batch, 0, batch.size(), kNow, kDays, routes);
  EXPECT_EQ(c.records[0].dead->reason, DeadLetterReason::kMissingDevice);
  const Classified refused =
      Classify(batch, 1, 2, kNow, kDays, routes, std::string("PostgreSQL refused the row"));
  ASSERT_EQ(refused.records.size(), 1u);
  EXPECT_EQ(refused.records[0].dead->reason, DeadLetterReason::kDataError);
  const LandingPlan p = Plan(refused, {}, {}, routes, "hub");
  EXPECT_TRUE(p.sends.empty());
  EXPECT_TRUE(p.fresh.empty());
  EXPECT_EQ(p.dead_letters.size(), 1u);
  EXPECT_EQ(p.next_offset, 3);
}

TEST(LandingPlan, LifecycleEventsTakeNoFallbackAndDropWithoutARoute) {
  const std::vector<KafkaRecord> batch = {
      Record(1, "2026-11-26T10:00:00Z", {{"iothub-message-source", "deviceLifecycleEvents"}})};
  const auto& routes = *routing::RouteSet::StoreEverything();
  const Classified c = Classify(batch, 0, batch.size(), kNow, kDays, routes);
  const LandingPlan p = Plan(c, {}, {}, routes, "hub");
  EXPECT_TRUE(p.fresh.empty());
  EXPECT_EQ(p.dropped, 1u);
  // A replayed drop is not counted on the checkpoint again.
  const LandingPlan replay = Plan(c, CheckpointState{std::nullopt, 5}, {}, routes, "hub");
  EXPECT_EQ(replay.dropped, 1u);
  EXPECT_EQ(replay.dropped_counted, 0);
}

}  // namespace
}  // namespace ferry::d2c
