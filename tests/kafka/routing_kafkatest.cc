// Routing in landing, replay, re-drive, lifecycle events and reading back,
// end to end through the gRPC API (ApiHarness) and a real consumer on the
// mock Kafka.
#include <set>

#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <prometheus/registry.h>

#include "consumers/d2c/consumer.h"
#include "core/time_text.h"
#include "ferry/v1/events.grpc.pb.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "ferry/v1/routing.grpc.pb.h"
#include "tests/support/api_harness.h"
#include "tests/support/kafka.h"
#include "tests/support/pg.h"
#include "tests/support/wait.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;

constexpr char kSource[] = "ferry.d2c";
constexpr char kAlerts[] = "ferry.alerts";

double Metric(prometheus::Registry& registry, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  double total = 0;
  for (const auto& f : registry.Collect()) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        bool found = false;
        for (const auto& l : m.label) found = found || (l.name == k && l.value == v);
        match = match && found;
      }
      if (match) total += m.counter.value + m.gauge.value;
    }
  }
  return total;
}

std::optional<std::string> Header(const testing::TestRecord& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

int BodyNumber(const std::string& body) {
  return std::stoi(body.substr(body.find(':') + 1));
}

class RoutingLandingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    api_ = std::make_unique<testing::ApiHarness>(db_.url());
    api_->kafka().CreateTopic(kAlerts, 2);
    api_->event_store().EnsureDays(api_->clock().Now(), 3, 1);
    routing_ = v1::Routing::NewStub(api_->Channel());
    events_ = v1::Events::NewStub(api_->Channel());
    producer_ = std::make_unique<testing::TestProducer>(api_->kafka().bootstrap());
  }

  void TearDown() override {
    if (consumer_) consumer_->Stop();
  }

  template <typename Stub, typename Req, typename Resp, typename Call>
  grpc::Status Do(Stub& stub, Call call, const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    api_->AsOwner(ctx);
    return (stub.*call)(&ctx, req, resp);
  }

  void CreateKafkaEndpoint(const std::string& name, const std::string& topic) {
    v1::CreateEndpointRequest req;
    req.mutable_endpoint()->set_name(name);
    req.mutable_endpoint()->set_kind(v1::ENDPOINT_KIND_KAFKA);
    req.mutable_endpoint()->set_kafka_topic(topic);
    v1::Endpoint out;
    ASSERT_TRUE(Do(*routing_, &v1::Routing::Stub::CreateEndpoint, req, &out).ok());
  }

  void CreateRoute(const std::string& name, const std::string& condition,
                   const std::string& endpoint,
                   v1::RouteSource source = v1::ROUTE_SOURCE_DEVICE_MESSAGES) {
    v1::CreateRouteRequest req;
    req.mutable_route()->set_name(name);
    req.mutable_route()->set_condition(condition);
    req.mutable_route()->set_endpoint(endpoint);
    req.mutable_route()->set_source(source);
    req.mutable_route()->set_enabled(true);
    v1::Route out;
    const grpc::Status s = Do(*routing_, &v1::Routing::Stub::CreateRoute, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  void SetEnrichment(const std::string& key, const std::string& value,
                     std::vector<std::string> endpoints) {
    v1::SetEnrichmentRequest req;
    req.mutable_enrichment()->set_key(key);
    req.mutable_enrichment()->set_value(value);
    for (const auto& e : endpoints) req.mutable_enrichment()->add_endpoints(e);
    v1::Enrichment out;
    const grpc::Status s = Do(*routing_, &v1::Routing::Stub::SetEnrichment, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  void SetFallback(bool on) {
    v1::SetFallbackRequest req;
    req.set_enabled(on);
    v1::RoutingSettings out;
    ASSERT_TRUE(Do(*routing_, &v1::Routing::Stub::SetFallback, req, &out).ok());
  }

  // The route set the store routes with reaches the last change through
  // NOTIFY (the poll is only a safety net): within 2 s here, 10 s allowed.
  void ExpectRoutesPropagated() {
    v1::RoutingSettings settings;
    ASSERT_TRUE(
        Do(*routing_, &v1::Routing::Stub::GetSettings, v1::GetRoutingSettingsRequest(), &settings)
            .ok());
    EXPECT_TRUE(testing::WaitFor(
        [&] { return api_->route_source().Current()->version() == settings.version(); }, 10s))
        << "route set version " << api_->route_source().Current()->version() << " want "
        << settings.version();
  }

  // Events numbered [first, first + n) for `devices` devices, JSON bodies.
  std::vector<testing::TestRecord> Events(int first, int n, int devices = 10, int partition = -1) {
    std::vector<testing::TestRecord> out;
    for (int i = first; i < first + n; ++i) {
      testing::TestRecord r;
      r.key = "device-" + std::to_string(i % devices);
      r.value = "{\"n\":" + std::to_string(i) + "}";
      r.partition = partition;
      r.headers = {{"message-id", "m-" + std::to_string(i)},
                   {"content-type", std::string("application/json")},
                   {"content-encoding", std::string("utf-8")}};
      out.push_back(std::move(r));
    }
    return out;
  }

  void StartConsumer() {
    d2c::ConsumerOptions o;
    o.brokers = api_->kafka().bootstrap();
    o.topic = kSource;
    o.group = "ferry-d2c";
    o.owner = "routing-test";
    o.kafka = testing::FastGroupTimers();
    consumer_ = std::make_unique<d2c::D2cConsumer>(o, api_->event_store(), api_->clock(), metrics_);
    consumer_->Start();
  }

  // Waits until the checkpoints cover `records` records in all.
  void WaitLanded(long records) {
    ASSERT_TRUE(testing::WaitFor(
        [&] {
          return Count("SELECT coalesce(sum(next_offset), 0) FROM d2c_checkpoints") >= records;
        },
        60s))
        << Count("SELECT coalesce(sum(next_offset), 0) FROM d2c_checkpoints");
  }

  long Count(const std::string& sql) { return db_.Count(sql); }
  std::string Text(const std::string& sql) { return db_.Text(sql); }

  testing::TestDatabase db_;
  std::unique_ptr<testing::ApiHarness> api_;
  std::unique_ptr<v1::Routing::Stub> routing_;
  std::unique_ptr<v1::Events::Stub> events_;
  std::unique_ptr<testing::TestProducer> producer_;
  prometheus::Registry metrics_;
  std::unique_ptr<d2c::D2cConsumer> consumer_;
};

TEST_F(RoutingLandingTest, KafkaEndpointStoreFallbackEnrichmentsAndLifecycleEvents) {
  CreateKafkaEndpoint("alerts", kAlerts);
  CreateRoute("hot", "$body.n >= 60", "alerts");
  // IoT Hub's own query for lifecycle notifications: iothub-message-schema
  // is an application property there, and here.
  CreateRoute(
      "created",
      "iothub-message-schema = 'deviceLifecycleNotification' AND opType = 'createDeviceIdentity'",
      "events", v1::ROUTE_SOURCE_DEVICE_LIFECYCLE_EVENTS);
  SetEnrichment("site", "plant-7", {"alerts", "events"});
  SetEnrichment("deviceStatus", "$device.status", {"alerts"});
  SetEnrichment("hub", "$iothubname", {"events"});
  ExpectRoutesPropagated();

  // One registered device: its creation is a lifecycle event, and its
  // registry status enriches its messages.
  auto registry = v1::Registry::NewStub(api_->Channel());
  v1::CreateDeviceRequest create;
  create.mutable_device()->set_device_id("device-1");
  v1::Device device;
  ASSERT_TRUE(Do(*registry, &v1::Registry::Stub::CreateDevice, create, &device).ok());

  // A tail stream opened before anything lands sees everything stored.
  grpc::ClientContext tail_ctx;
  api_->AsOwner(tail_ctx);
  tail_ctx.set_deadline(std::chrono::system_clock::now() + 90s);
  auto tail = events_->TailEvents(&tail_ctx, v1::TailEventsRequest());

  producer_->Send(kSource, Events(0, 100));
  StartConsumer();
  WaitLanded(101);  // 100 messages and the lifecycle event

  // The store: the fallback's 60 (n < 60) and the lifecycle event.
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 61);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events WHERE message_id LIKE 'm-%'"
                  " AND (convert_from(body, 'UTF8')::jsonb->>'n')::int >= 60"),
            0);
  EXPECT_EQ(
      Count("SELECT count(*) FROM d2c_events WHERE application_properties->>'site' = 'plant-7'"
            " AND application_properties->>'hub' = 'test-hub'"),
      61);
  EXPECT_EQ(
      Text("SELECT application_properties->>'opType' FROM d2c_events WHERE device_id = 'device-1'"
           " AND system_properties->>'iothub-message-source' = 'deviceLifecycleEvents'"),
      "createDeviceIdentity");
  EXPECT_EQ(Text("SELECT application_properties->>'iothub-message-schema' FROM d2c_events"
                 " WHERE device_id = 'device-1' AND system_properties->>'iothub-message-source' = "
                 "'deviceLifecycleEvents'"),
            "deviceLifecycleNotification");
  EXPECT_EQ(Text("SELECT convert_from(body, 'UTF8')::jsonb->>'deviceId' FROM d2c_events"
                 " WHERE system_properties->>'iothub-message-source' = 'deviceLifecycleEvents'"),
            "device-1");
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_dead_letters"), 0);
  // Every offset accounted for once: stored, or routed only to Kafka.
  EXPECT_EQ(Count("SELECT sum(routed_elsewhere) FROM d2c_checkpoints"), 40);
  EXPECT_EQ(Count("SELECT sum(dropped) FROM d2c_checkpoints"), 0);

  // The Kafka endpoint: exactly the 40 hot ones, enriched, read back.
  const auto alerts = testing::ReadTopic(api_->kafka().bootstrap(), kAlerts, 2, 40, 20s);
  ASSERT_EQ(alerts.size(), 40u);
  std::set<int> numbers;
  for (const auto& r : alerts) {
    numbers.insert(BodyNumber(*r.value));
    EXPECT_EQ(Header(r, "site"), "plant-7");
    EXPECT_EQ(Header(r, "deviceStatus"), *r.key == "device-1" ? "enabled" : "$device.status");
    EXPECT_EQ(Header(r, "iothub-connection-device-id"), *r.key);
    EXPECT_FALSE(Header(r, "hub").has_value());  // enrichments are per endpoint
  }
  EXPECT_EQ(numbers.size(), 40u);
  EXPECT_EQ(*numbers.begin(), 60);

  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return Metric(metrics_, "ferry_d2c_routed_total", {{"endpoint", "alerts"}}) >= 40;
      },
      10s));
  EXPECT_EQ(Metric(metrics_, "ferry_d2c_routed_total", {{"endpoint", "alerts"}}), 40);
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return Metric(metrics_, "ferry_d2c_routed_total", {{"endpoint", "events"}}) >= 61;
      },
      10s));
  EXPECT_EQ(Metric(metrics_, "ferry_d2c_routed_total", {{"endpoint", "events"}}), 61);
  EXPECT_EQ(Metric(metrics_, "ferry_d2c_dropped_total"), 0);

  // The tail stream got every stored event once, in landing order.
  std::set<std::string> seen;
  std::string last_position;
  v1::TailEventsResponse batch;
  while (seen.size() < 61 && tail->Read(&batch)) {
    for (const auto& e : batch.events())
      seen.insert(e.topic() + "/" + std::to_string(e.partition()) + "/" +
                  std::to_string(e.offset()));
    last_position = batch.position();
  }
  EXPECT_EQ(seen.size(), 61u);
  tail_ctx.TryCancel();
  (void)tail->Finish();

  // Paged reads of one device: every stored event of it, once.
  std::set<std::int64_t> device_offsets;
  std::string token;
  for (int pages = 0; pages < 100; ++pages) {
    v1::ReadEventsRequest req;
    req.set_device_id("device-1");
    req.set_page_size(2);
    req.set_page_token(token);
    v1::ReadEventsResponse resp;
    ASSERT_TRUE(Do(*events_, &v1::Events::Stub::ReadEvents, req, &resp).ok());
    for (const auto& e : resp.events()) {
      EXPECT_EQ(e.device_id(), "device-1");
      device_offsets.insert(e.offset());
    }
    token = resp.next_page_token();
    if (resp.events().empty()) break;
  }
  EXPECT_EQ(static_cast<long>(device_offsets.size()),
            Count("SELECT count(*) FROM d2c_events WHERE device_id = 'device-1'"));
  EXPECT_EQ(device_offsets.size(), 7u);  // n = 1, 11, ..., 51 and the lifecycle event
}

TEST_F(RoutingLandingTest, WithTheFallbackOffUnmatchedMessagesAreDroppedAndCounted) {
  CreateRoute("hot", "$body.n >= 60", "events");
  SetFallback(false);
  ExpectRoutesPropagated();
  producer_->Send(kSource, Events(0, 100));
  StartConsumer();
  WaitLanded(100);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 40);
  EXPECT_EQ(Count("SELECT sum(dropped) FROM d2c_checkpoints"), 60);
  EXPECT_TRUE(
      testing::WaitFor([&] { return Metric(metrics_, "ferry_d2c_dropped_total") >= 60; }, 10s));
  EXPECT_EQ(Metric(metrics_, "ferry_d2c_dropped_total"), 60);
  EXPECT_GE(Count("SELECT min(route_version) FROM d2c_checkpoints WHERE next_offset IS NOT NULL"),
            3);

  // Fallback on: the next messages that match nothing go to the store.
  SetFallback(true);
  ExpectRoutesPropagated();
  producer_->Send(kSource, Events(100, 10, 10, 0));
  WaitLanded(110);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 50);
  EXPECT_EQ(Count("SELECT sum(dropped) FROM d2c_checkpoints"), 60);
}

TEST_F(RoutingLandingTest, ResetToEarliestReplaysWithoutDuplicatesAndKafkaGetsItAgain) {
  CreateKafkaEndpoint("alerts", kAlerts);
  CreateRoute("hot", "$body.n >= 30", "alerts");
  CreateRoute("all", "", "events");
  ExpectRoutesPropagated();
  std::vector<testing::TestRecord> records = Events(0, 50, 10, 0);
  records[7].headers.emplace_back("iothub-enqueuedtime", std::string("not a time"));
  producer_->Send(kSource, records);
  StartConsumer();
  WaitLanded(50);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 49);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_dead_letters WHERE reason = 'invalid_timestamp'"), 1);
  ASSERT_EQ(testing::ReadTopic(api_->kafka().bootstrap(), kAlerts, 2, 20, 20s).size(), 20u);
  const long epoch = Count("SELECT epoch FROM d2c_checkpoints WHERE kafka_partition = 0");

  v1::ResetCheckpointsRequest reset;
  reset.add_partitions(0);
  reset.set_earliest(true);
  v1::ResetCheckpointsResponse reset_resp;
  const grpc::Status s = Do(*events_, &v1::Events::Stub::ResetCheckpoints, reset, &reset_resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(reset_resp.checkpoints_size(), 1);
  EXPECT_EQ(reset_resp.checkpoints(0).next_offset(), 0);
  EXPECT_EQ(reset_resp.checkpoints(0).high_offset(), 50);
  EXPECT_EQ(reset_resp.checkpoints(0).owner(), "routing-test");
  // Audited in the reset's transaction, with who and what.
  EXPECT_EQ(
      Text("SELECT actor || ' ' || actor_kind || ' ' || target || ' ' || (details->>'from_offset')"
           " || '->' || (details->>'to_offset') FROM audit_log WHERE action = 'checkpoint.reset'"),
      "iothubowner policy ferry-d2c/" + std::string(kSource) + "/0 50->0");

  // The owner sees its fence, re-reads the checkpoint and replays: nothing
  // lands twice, every record is skipped and counted, Kafka gets the hot
  // ones again (at least once).
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Count("SELECT replay_skipped FROM d2c_checkpoints WHERE kafka_partition = 0") >= 50;
      },
      60s))
      << Count("SELECT replay_skipped FROM d2c_checkpoints WHERE kafka_partition = 0");
  EXPECT_EQ(Count("SELECT next_offset FROM d2c_checkpoints WHERE kafka_partition = 0"), 50);
  EXPECT_GT(Count("SELECT epoch FROM d2c_checkpoints WHERE kafka_partition = 0"), epoch);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 49);
  EXPECT_EQ(Count("SELECT count(DISTINCT kafka_offset) FROM d2c_events"), 49);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_dead_letters"), 1);
  EXPECT_EQ(Count("SELECT replay_skipped FROM d2c_checkpoints WHERE kafka_partition = 0"), 50);
  EXPECT_TRUE(testing::WaitFor(
      [&] { return Metric(metrics_, "ferry_d2c_replay_skipped_total") >= 50; }, 10s));
  EXPECT_EQ(Metric(metrics_, "ferry_d2c_replay_skipped_total"), 50);
  EXPECT_EQ(testing::ReadTopic(api_->kafka().bootstrap(), kAlerts, 2, 40, 20s).size(), 40u);

  v1::ListCheckpointsResponse list;
  ASSERT_TRUE(
      Do(*events_, &v1::Events::Stub::ListCheckpoints, v1::ListCheckpointsRequest(), &list).ok());
  bool found = false;
  for (const auto& c : list.checkpoints()) {
    if (c.partition() != 0) continue;
    found = true;
    EXPECT_EQ(c.lag(), 0);
    EXPECT_EQ(c.next_offset(), 50);
    EXPECT_EQ(c.replay_skipped(), 50);
  }
  EXPECT_TRUE(found);
}

// IoT Hub drops a message at an endpoint when its enrichments take it past
// 256 KB, and counts it (d2c.telemetry.egress.invalid); Ferry does the same
// for Kafka endpoints. The event store, which has no size limit, keeps it:
// Ferry acknowledged it (docs/deviations.md).
TEST_F(RoutingLandingTest, EnrichmentsPastTheSizeLimitSkipThatEndpointCounted) {
  CreateKafkaEndpoint("alerts", kAlerts);
  CreateRoute("to-alerts", "true", "alerts");
  CreateRoute("to-store", "true", "events");
  SetEnrichment("site", "plant-7", {"alerts", "events"});
  ExpectRoutesPropagated();
  std::vector<testing::TestRecord> records = Events(0, 2, 1, 0);
  // Exactly 256 KB as sent (body, message-id "m-0", content type and
  // encoding values): it lands; "site" = "plant-7" takes it past.
  records[0].value = std::string(256 * 1024 - 3 - 16 - 5, 'x');
  producer_->Send(kSource, records);
  StartConsumer();
  WaitLanded(2);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_dead_letters"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 2);
  EXPECT_EQ(
      Count("SELECT count(*) FROM d2c_events WHERE application_properties->>'site' = 'plant-7'"),
      2);
  const auto alerts = testing::ReadTopic(api_->kafka().bootstrap(), kAlerts, 2, 1, 20s);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(Header(alerts[0], "message-id"), "m-1");
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return Metric(metrics_, "ferry_d2c_endpoint_oversized_total", {{"endpoint", "alerts"}}) >=
               1;
      },
      10s));
  EXPECT_EQ(Metric(metrics_, "ferry_d2c_endpoint_oversized_total", {{"endpoint", "alerts"}}), 1);
  EXPECT_EQ(Metric(metrics_, "ferry_d2c_routed_total", {{"endpoint", "alerts"}}), 1);
}

TEST_F(RoutingLandingTest, ReDrivenDeadLettersLandOnce) {
  // Enqueued ten days ahead: no day partition yet, so dead-lettered.
  const std::string later = FormatTime(api_->clock().Now() + std::chrono::hours(24 * 10));
  std::vector<testing::TestRecord> records = Events(0, 5, 5, 1);
  for (int i = 0; i < 3; ++i) records[i].headers.emplace_back("iothub-enqueuedtime", later);
  producer_->Send(kSource, records);
  StartConsumer();
  WaitLanded(5);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_dead_letters WHERE reason = 'future_timestamp'"), 3);

  v1::ListDeadLettersRequest list_req;
  list_req.set_reason("future_timestamp");
  v1::ListDeadLettersResponse listed;
  ASSERT_TRUE(Do(*events_, &v1::Events::Stub::ListDeadLetters, list_req, &listed).ok());
  ASSERT_EQ(listed.dead_letters_size(), 3);
  EXPECT_EQ(listed.dead_letters(0).value(), "{\"n\":0}");

  // The fix: the day partitions exist now. Re-drive by filter, then the
  // same records again by reference: each lands once.
  api_->event_store().EnsureDays(api_->clock().Now(), 12, 1);
  v1::RedriveDeadLettersRequest redrive;
  redrive.set_reason("future_timestamp");
  v1::RedriveDeadLettersResponse redriven;
  ASSERT_TRUE(Do(*events_, &v1::Events::Stub::RedriveDeadLetters, redrive, &redriven).ok());
  ASSERT_EQ(redriven.results_size(), 3);
  for (const auto& r : redriven.results()) EXPECT_EQ(r.outcome(), "stored") << r.detail();
  v1::RedriveDeadLettersRequest again;
  for (const auto& d : listed.dead_letters()) {
    v1::DeadLetterRef* ref = again.add_records();
    ref->set_partition(d.partition());
    ref->set_offset(d.offset());
  }
  ASSERT_TRUE(Do(*events_, &v1::Events::Stub::RedriveDeadLetters, again, &redriven).ok());
  for (const auto& r : redriven.results()) EXPECT_EQ(r.outcome(), "not_found");
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 5);
  EXPECT_EQ(Count("SELECT count(DISTINCT kafka_offset) FROM d2c_events"), 5);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_dead_letters"), 0);
  EXPECT_EQ(Metric(api_->metrics(), "ferry_d2c_redriven_total", {{"outcome", "stored"}}), 3);
  // One audit record per record taken out of the dead letters; none for
  // the repeat that found nothing.
  EXPECT_EQ(Count("SELECT count(*) FROM audit_log WHERE action = 'deadletter.redrive' AND actor = "
                  "'iothubowner'"
                  " AND details->>'outcome' = 'stored'"),
            3);
  EXPECT_EQ(Count("SELECT count(*) FROM audit_log"), 3);
}

}  // namespace
}  // namespace ferry
