#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <prometheus/registry.h>

#include "consumers/d2c/consumer.h"
#include "consumers/d2c/event_store.h"
#include "consumers/d2c/record.h"
#include "core/kafka/mock_cluster.h"
#include "core/pg/pool.h"
#include "tests/support/fake_clock.h"
#include "tests/support/kafka.h"
#include "tests/support/pg.h"
#include "tests/support/wait.h"

namespace ferry::d2c {
namespace {

using namespace std::chrono_literals;

constexpr char kTopic[] = "d2c";
constexpr int kPartitions = 4;

double Metric(prometheus::Registry& registry, const std::string& name) {
  double total = 0;
  for (const auto& f : registry.Collect()) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) total += m.counter.value + m.gauge.value;
  }
  return total;
}

class D2cTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    kafka_.CreateTopic(kTopic, kPartitions);
    pool_ = std::make_unique<pg::Pool>(pg::PoolOptions{.url = db_.url(), .max_size = 8}, nullptr);
    store_ = std::make_unique<EventStore>(*pool_);
    store_->EnsureDays(clock_.Now(), 3, 1);
    producer_ = std::make_unique<testing::TestProducer>(kafka_.bootstrap());
  }

  std::unique_ptr<D2cConsumer> Consumer(const std::string& owner, prometheus::Registry& registry) {
    ConsumerOptions o;
    o.brokers = kafka_.bootstrap();
    o.topic = kTopic;
    o.owner = owner;
    o.batch_max_records = 500;
    o.kafka = testing::FastGroupTimers();
    auto c = std::make_unique<D2cConsumer>(o, *store_, clock_, registry);
    c->Start();
    return c;
  }

  // `n` events for `devices` devices, bodies numbered from `first`.
  std::vector<testing::TestRecord> Events(int first, int n, int devices = 50) {
    std::vector<testing::TestRecord> out;
    for (int i = first; i < first + n; ++i) {
      testing::TestRecord r;
      r.key = "device-" + std::to_string(i % devices);
      r.value = "{\"n\":" + std::to_string(i) + "}";
      r.headers = {{"message-id", "m-" + std::to_string(i)},
                   {"content-type", std::string("application/json")},
                   {"content-encoding", std::string("utf-8")},
                   {"iothub-connection-device-id", *r.key},
                   {"temperature", std::to_string(20 + i % 10)}};
      out.push_back(std::move(r));
    }
    return out;
  }

  long Count(const std::string& sql) {
    pqxx::connection conn(db_.url());
    pqxx::nontransaction tx(conn);
    return tx.exec(sql)[0][0].as<long>();
  }

  // Sum over the landed bodies' numbers: equal to the produced sum only if
  // every event landed exactly once (with the count).
  long BodySum() {
    return Count("SELECT coalesce(sum((convert_from(body, 'UTF8')::jsonb->>'n')::bigint), 0) FROM d2c_events");
  }

  testing::TestDatabase db_;
  kafka::MockCluster kafka_{1};
  testing::FakeClock clock_{FromUnixMicros(ToUnixMicros(std::chrono::system_clock::now()))};
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<testing::TestProducer> producer_;
};

TEST_F(D2cTest, EveryEventLandsExactlyOnceWithItsProperties) {
  constexpr int kEvents = 3000;
  producer_->Send(kTopic, Events(0, kEvents));
  prometheus::Registry registry;
  auto consumer = Consumer("solo", registry);
  ASSERT_TRUE(testing::WaitFor([&] { return Count("SELECT count(*) FROM d2c_events") >= kEvents; }, 60s))
      << Count("SELECT count(*) FROM d2c_events");
  consumer->Stop();
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), kEvents);
  EXPECT_EQ(Count("SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM d2c_events"), kEvents);
  EXPECT_EQ(BodySum(), static_cast<long>(kEvents) * (kEvents - 1) / 2);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_dead_letters"), 0);
  // The checkpoint of each partition is one past its last landed offset.
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_checkpoints c WHERE next_offset = "
                  "(SELECT max(kafka_offset) + 1 FROM d2c_events e WHERE e.kafka_partition = c.kafka_partition)"),
            kPartitions);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events WHERE message_id = 'm-7' AND device_id = 'device-7'"
                  " AND content_type = 'application/json' AND application_properties->>'temperature' = '27'"
                  " AND system_properties ? 'iothub-enqueuedtime'"),
            1);
  EXPECT_EQ(Metric(registry, "ferry_d2c_events_landed_total"), kEvents);
}

}  // namespace
}  // namespace ferry::d2c
