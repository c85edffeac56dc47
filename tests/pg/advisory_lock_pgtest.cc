#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "core/pg/advisory_lock.h"
#include "core/pg/pool.h"
#include "core/pg/transaction.h"
#include "tests/support/pg.h"
#include "tests/support/wait.h"

namespace ferry::pg {
namespace {

// The keys are what Ferry took before they were gathered here: a replica
// of an older build running beside this one during a rolling upgrade must
// contend for the same locks (else two sweepers run at once).
TEST(AdvisoryLock, KeysAreTheNamesBytesAsBeforeTheyWereGathered) {
  EXPECT_EQ(AdvisoryLockKey(AdvisoryLock::kMigrations), 0x66657272792e6d67LL);
  EXPECT_EQ(AdvisoryLockKey(AdvisoryLock::kDayPartitions), 0x66657272792e6479LL);
  EXPECT_EQ(AdvisoryLockKey(AdvisoryLock::kLifecyclePublisher), 0x66657272792e6c63LL);
  EXPECT_EQ(AdvisoryLockKey(AdvisoryLock::kSweeper), 0x66657272792e7377LL);
}

class LeadershipTest : public ::testing::Test {
 protected:
  testing::TestDatabase db_;
  Pool pool_{PoolOptions{.url = db_.url(), .max_size = 2}, nullptr};
};

TEST_F(LeadershipTest, OneReplicaLeadsUntilItResignsOrLosesItsSession) {
  Leadership a(pool_, AdvisoryLock::kSweeper);
  Leadership b(pool_, AdvisoryLock::kSweeper);
  ASSERT_TRUE(a.Hold());
  EXPECT_FALSE(b.Hold());
  EXPECT_TRUE(a.Hold());  // still held, checked again
  a.Resign();
  EXPECT_TRUE(b.Hold());
  EXPECT_FALSE(a.Hold());
  // b's session is killed (a failover, a restarted server): b no longer
  // leads, and a can take over.
  {
    pqxx::connection admin(db_.url());
    pqxx::nontransaction tx(admin);
    tx.exec_params(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
        " AND granted AND ((classid::bigint << 32) | objid::bigint) = $1",
        AdvisoryLockKey(AdvisoryLock::kSweeper));
  }
  EXPECT_FALSE(b.Hold());
  // The killed server process lets its locks go as it exits.
  EXPECT_TRUE(testing::WaitFor([&] { return a.Hold(); }, std::chrono::seconds(30)));
  EXPECT_FALSE(b.Hold());
}

TEST_F(LeadershipTest, DifferentLocksDoNotExcludeEachOther) {
  Leadership sweeper(pool_, AdvisoryLock::kSweeper);
  Leadership publisher(pool_, AdvisoryLock::kLifecyclePublisher);
  EXPECT_TRUE(sweeper.Hold());
  EXPECT_TRUE(publisher.Hold());
}

TEST_F(LeadershipTest, ATransactionLockIsHeldUntilCommit) {
  pqxx::connection holder(db_.url());
  pqxx::work tx(holder);
  ASSERT_TRUE(TryLockForTransaction(tx, AdvisoryLock::kLifecyclePublisher));
  WithTransaction(pool_, [](pqxx::dbtransaction& other) {
    EXPECT_FALSE(TryLockForTransaction(other, AdvisoryLock::kLifecyclePublisher));
  });
  tx.commit();
  WithTransaction(pool_, [](pqxx::dbtransaction& other) {
    EXPECT_TRUE(TryLockForTransaction(other, AdvisoryLock::kLifecyclePublisher));
  });
}

}  // namespace
}  // namespace ferry::pg
