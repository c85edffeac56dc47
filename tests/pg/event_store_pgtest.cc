#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "consumers/d2c/event_store.h"
#include "core/pg/pool.h"
#include "tests/support/fake_clock.h"
#include "tests/support/pg.h"

namespace ferry::d2c {
namespace {

class EventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.Migrate();
    pool_ = std::make_unique<pg::Pool>(pg::PoolOptions{.url = db_.url(), .max_size = 2}, nullptr);
    store_ = std::make_unique<EventStore>(*pool_);
    store_->EnsureDays(clock_.Now(), 3, 1);
  }

  LandingBatch Batch(std::int64_t epoch, std::int64_t first, int n) {
    LandingBatch b{id_, epoch, {}};
    for (std::int64_t o = first; o < first + n; ++o) {
      KafkaRecord r;
      r.topic = id_.topic;
      r.partition = id_.partition;
      r.offset = o;
      r.key = "dev";
      r.value = std::to_string(o);
      r.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           clock_.Now().time_since_epoch()).count();
      b.records.push_back(r);
    }
    return b;
  }

  long Count(const std::string& sql) {
    pqxx::connection conn(db_.url());
    pqxx::nontransaction tx(conn);
    return tx.exec(sql)[0][0].as<long>();
  }

  testing::TestDatabase db_;
  testing::FakeClock clock_{FromUnixMicros(ToUnixMicros(std::chrono::system_clock::now()))};
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<EventStore> store_;
  PartitionId id_{"g", "t", 0};
};

TEST_F(EventStoreTest, ARetriedBatchLandsOnlyWhatItHasNotYet) {
  const Claim c = store_->ClaimPartition(id_, "me");
  EXPECT_FALSE(c.next_offset.has_value());
  EXPECT_EQ(store_->Land(Batch(c.epoch, 0, 10), clock_.Now()).events, 10u);
  // The same batch again (a commit whose outcome was unknown), and one that
  // overlaps it (a split whose first half had committed).
  const LandingOutcome again = store_->Land(Batch(c.epoch, 0, 10), clock_.Now());
  EXPECT_FALSE(again.fenced);
  EXPECT_EQ(again.events, 0u);
  EXPECT_EQ(store_->Land(Batch(c.epoch, 5, 10), clock_.Now()).events, 5u);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 15);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_dead_letters"), 0);
  EXPECT_EQ(store_->NextOffset(id_), 15);
  // The checkpoint never moves backwards.
  EXPECT_EQ(store_->Land(Batch(c.epoch, 3, 2), clock_.Now()).events, 0u);
  EXPECT_EQ(store_->NextOffset(id_), 15);
}

TEST_F(EventStoreTest, AFencedBatchWritesNothing) {
  const Claim old = store_->ClaimPartition(id_, "zombie");
  const Claim now = store_->ClaimPartition(id_, "owner");
  EXPECT_EQ(now.epoch, old.epoch + 1);
  EXPECT_TRUE(store_->Land(Batch(old.epoch, 0, 10), clock_.Now()).fenced);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 0);
  EXPECT_FALSE(store_->NextOffset(id_).has_value());
  EXPECT_EQ(store_->Land(Batch(now.epoch, 0, 10), clock_.Now()).events, 10u);
}

TEST_F(EventStoreTest, AbsurdTimestampsAreDeadLetteredNotStuck) {
  const Claim c = store_->ClaimPartition(id_, "me");
  LandingBatch b = Batch(c.epoch, 0, 3);
  b.records[1].timestamp_ms = 10'000'000'000'000'000;  // year 318857
  const LandingOutcome o = store_->Land(b, clock_.Now());
  EXPECT_EQ(o.events, 2u);
  EXPECT_EQ(o.dead_letters.at(DeadLetterReason::kInvalidTimestamp), 1u);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_dead_letters WHERE record_timestamp IS NULL"), 1);
  EXPECT_EQ(store_->NextOffset(id_), 3);
}

}  // namespace
}  // namespace ferry::d2c
