#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <variant>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "core/pg/pool.h"
#include "store/d2c/event_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/pg.h"
#include "tests/support/wait.h"

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
      r.timestamp_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now().time_since_epoch())
              .count();
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

// An endpoint sink that holds every delivery until released, counting them.
class HeldSink final : public EndpointSink {
 public:
  void Deliver(const std::vector<OutgoingRecord>& records) override {
    std::unique_lock lock(mutex_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    --waiting_;
    delivered_ += records.size();
  }
  void Release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    cv_.notify_all();
  }
  bool WaitUntilHeld(std::chrono::seconds deadline) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, deadline, [&] { return waiting_ > 0; });
  }
  std::size_t delivered() {
    std::lock_guard lock(mutex_);
    return delivered_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int waiting_ = 0;
  bool released_ = false;
  std::size_t delivered_ = 0;
};

std::shared_ptr<const routing::RouteSet> EverythingToKafkaAndTheStore() {
  std::vector<routing::EndpointTarget> endpoints = {{routing::kStoreEndpoint, false, "", {}},
                                                    {"out", true, "t.out", {}}};
  std::vector<routing::CompiledRoute> routes;
  routes.push_back({"to-out", false, std::get<routing::Query>(routing::Query::Parse("true")), 1});
  routes.push_back({"to-store", false, std::get<routing::Query>(routing::Query::Parse("true")), 0});
  return std::make_shared<const routing::RouteSet>(1, false, std::move(endpoints),
                                                   std::move(routes));
}

// Waiting for a Kafka endpoint's acknowledgements (up to the sink's timeout,
// 30 s in ferryd, when an endpoint is down) holds no lock and no
// transaction: the next owner's claim goes through meanwhile, and the held
// batch then finds itself fenced and writes nothing. (Its endpoint records
// were sent: endpoints get at-least-once, as after a crash.)
TEST_F(EventStoreTest, AClaimDoesNotWaitForAnEndpointsAcknowledgements) {
  HeldSink sink;
  const auto routes = EverythingToKafkaAndTheStore();
  store_->SetRouting([&] { return routes; }, &sink, "hub");
  const Claim old = store_->ClaimPartition(id_, "old");
  auto landing = std::async(std::launch::async,
                            [&] { return store_->Land(Batch(old.epoch, 0, 10), clock_.Now()); });
  ASSERT_TRUE(sink.WaitUntilHeld(std::chrono::seconds(60)));
  auto claim = std::async(std::launch::async, [&] {
    EventStore other(*pool_);
    return other.ClaimPartition(id_, "new");
  });
  const bool claimed = claim.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  sink.Release();
  ASSERT_TRUE(claimed) << "the claim waited for the endpoint's acknowledgements";
  const Claim now = claim.get();
  EXPECT_EQ(now.epoch, old.epoch + 1);
  const LandingOutcome held = landing.get();
  EXPECT_TRUE(held.fenced);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_events"), 0);
  EXPECT_FALSE(store_->NextOffset(id_).has_value());
  // The new owner lands the batch whole, sending it to the endpoint again.
  const LandingOutcome landed = store_->Land(Batch(now.epoch, 0, 10), clock_.Now());
  EXPECT_EQ(landed.events, 10u);
  EXPECT_EQ(landed.routed.at("out"), 10u);
  EXPECT_EQ(sink.delivered(), 20u);
  EXPECT_EQ(store_->NextOffset(id_), 10);
}

// Records Kafka deleted under a stalled checkpoint are data loss: one gap
// row, the partition's `lost`, the checkpoint moved, in one fenced
// transaction; the part a replay had landed before is not loss.
TEST_F(EventStoreTest, SkippingDeletedRecordsRecordsTheGapOnce) {
  const Claim c = store_->ClaimPartition(id_, "me");
  ASSERT_EQ(store_->Land(Batch(c.epoch, 0, 10), clock_.Now()).events, 10u);
  // Kafka's log now starts at 25: [10, 25) never landed.
  const GapOutcome gap = store_->SkipDeleted(id_, c.epoch, 10, 25, "me");
  EXPECT_FALSE(gap.fenced);
  EXPECT_EQ(gap.lost_from, 10);
  EXPECT_EQ(gap.lost_to, 25);
  EXPECT_EQ(gap.replay_skipped, 0);
  EXPECT_EQ(store_->NextOffset(id_), 25);
  EXPECT_EQ(
      Count("SELECT count(*) FROM d2c_gaps WHERE consumer_group = 'g' AND topic = 't'"
            " AND kafka_partition = 0 AND from_offset = 10 AND to_offset = 25 AND owner = 'me'"),
      1);
  EXPECT_EQ(Count("SELECT lost FROM d2c_checkpoints"), 15);
  // The same skip again (a retried transaction whose commit was unknown, or
  // a zombie) finds the checkpoint moved: nothing is written twice.
  EXPECT_TRUE(store_->SkipDeleted(id_, c.epoch, 10, 25, "me").fenced);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_gaps"), 1);
  // A stale epoch is fenced too.
  const Claim next = store_->ClaimPartition(id_, "other");
  EXPECT_TRUE(store_->SkipDeleted(id_, c.epoch, 25, 30, "me").fenced);
  ASSERT_EQ(store_->Land(Batch(next.epoch, 25, 5), clock_.Now()).events, 5u);

  // A replay from 0 that retention overtakes at 28: [0, 28) had all
  // landed or been lost before (below the high offset 30), nothing new is lost.
  store_->ResetCheckpoint(id_, 0);
  const Claim replay = store_->ClaimPartition(id_, "other");
  const GapOutcome overtaken = store_->SkipDeleted(id_, replay.epoch, 0, 28, "other");
  EXPECT_FALSE(overtaken.fenced);
  EXPECT_EQ(overtaken.lost_from, 28);
  EXPECT_EQ(overtaken.lost_to, 28);
  EXPECT_EQ(overtaken.replay_skipped, 28);
  EXPECT_EQ(Count("SELECT count(*) FROM d2c_gaps"), 1);
  EXPECT_EQ(store_->NextOffset(id_), 28);
  // Deleted past the high offset during a replay: only the part above it is lost.
  ASSERT_EQ(store_->Land(Batch(replay.epoch, 28, 2), clock_.Now()).events, 0u);
  store_->ResetCheckpoint(id_, 28);
  const Claim again = store_->ClaimPartition(id_, "other");
  const GapOutcome both = store_->SkipDeleted(id_, again.epoch, 28, 40, "other");
  EXPECT_EQ(both.replay_skipped, 2);
  EXPECT_EQ(both.lost_from, 30);
  EXPECT_EQ(both.lost_to, 40);
  EXPECT_EQ(Count("SELECT lost FROM d2c_checkpoints"), 25);
  const auto rows = store_->Checkpoints("g", "t");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].lost, 25);
  EXPECT_EQ(rows[0].next_offset, 40);
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
