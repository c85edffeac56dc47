#include <atomic>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>
#include <prometheus/registry.h>

#include "core/error.h"
#include "core/pg/copy.h"
#include "core/pg/pool.h"
#include "core/pg/transaction.h"
#include "tests/support/pg.h"

namespace ferry::pg {
namespace {

double Sample(prometheus::Registry& registry, const std::string& name,
              const std::string& label_value = "") {
  double total = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      bool match = label_value.empty();
      for (const auto& l : m.label) match = match || l.value == label_value;
      if (match) total += m.counter.value + m.gauge.value;
    }
  }
  return total;
}

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = std::make_unique<Pool>(PoolOptions{.url = db_.url(), .max_size = 4}, &registry_);
    WithTransaction(*pool_, [](pqxx::dbtransaction& tx) {
      tx.exec0("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)");
      tx.exec0("INSERT INTO counter VALUES (1, 0)");
      tx.exec0("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)");
    });
  }

  int BackendPid() {
    return WithTransaction(*pool_, [](pqxx::dbtransaction& tx) {
      return tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
    });
  }

  testing::TestDatabase db_;
  prometheus::Registry registry_;
  std::unique_ptr<Pool> pool_;
};

TEST_F(PoolTest, CommitsAndReturnsTheBodysValue) {
  const int n = WithTransaction(*pool_, [](pqxx::dbtransaction& tx) {
    tx.exec0("UPDATE counter SET n = n + 5");
    return tx.exec("SELECT n FROM counter")[0][0].as<int>();
  });
  EXPECT_EQ(n, 5);
  EXPECT_EQ(Sample(registry_, "ferry_db_pool_connections", "idle"), 1);
  EXPECT_EQ(Sample(registry_, "ferry_db_pool_connections", "in_use"), 0);
}

TEST_F(PoolTest, RetriesASerializationFailureAndCountsIt) {
  int calls = 0;
  WithTransaction(*pool_, [&](pqxx::dbtransaction& tx) {
    tx.exec0("UPDATE counter SET n = n + 1");
    if (++calls == 1) throw pqxx::serialization_failure("could not serialize access");
  });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(Sample(registry_, "ferry_db_transaction_retries_total", "serialization_failure"), 1);
  // The first attempt rolled back: exactly one increment landed.
  EXPECT_EQ(WithTransaction(*pool_,
                            [](pqxx::dbtransaction& tx) {
                              return tx.exec("SELECT n FROM counter")[0][0].as<int>();
                            }),
            1);
}

TEST_F(PoolTest, ConcurrentSerializableIncrementsAreExact) {
  constexpr int kThreads = 4, kEach = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        WithTransaction(
            *pool_,
            [](pqxx::dbtransaction& tx) {
              const int n = tx.exec("SELECT n FROM counter WHERE id = 1")[0][0].as<int>();
              tx.exec_params0("UPDATE counter SET n = $1 WHERE id = 1", n + 1);
            },
            TxOptions{.isolation = Isolation::kSerializable, .max_attempts = 50});
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(WithTransaction(*pool_,
                            [](pqxx::dbtransaction& tx) {
                              return tx.exec("SELECT n FROM counter")[0][0].as<int>();
                            }),
            kThreads * kEach);
}

TEST_F(PoolTest, ABrokenConnectionIsClosedAndTheTransactionRetried) {
  const int victim = BackendPid();
  {
    pqxx::connection admin(db_.url());
    pqxx::nontransaction tx(admin);
    ASSERT_TRUE(tx.exec_params("SELECT pg_terminate_backend($1)", victim)[0][0].as<bool>());
  }
  int calls = 0;
  const int pid = WithTransaction(*pool_, [&](pqxx::dbtransaction& tx) {
    ++calls;
    return tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
  });
  EXPECT_NE(pid, victim);
  EXPECT_GE(Sample(registry_, "ferry_db_pool_connections_closed_total"), 1);
  EXPECT_EQ(Sample(registry_, "ferry_db_pool_connections", "in_use"), 0);
}

TEST_F(PoolTest, ACopyCutOffHalfWayClosesTheConnection) {
  const int before = BackendPid();
  EXPECT_THROW(WithTransaction(*pool_,
                               [](pqxx::dbtransaction& tx) {
                                 CopyIn copy(tx, "items", {"id", "name"});
                                 copy << std::make_tuple(1, std::string("one"));
                                 throw std::runtime_error("producer failed mid-COPY");
                               }),
               std::runtime_error);
  EXPECT_EQ(Sample(registry_, "ferry_db_pool_connections_closed_total", "discarded"), 1);
  EXPECT_NE(BackendPid(), before);
  EXPECT_EQ(WithTransaction(*pool_,
                            [](pqxx::dbtransaction& tx) {
                              return tx.exec("SELECT count(*) FROM items")[0][0].as<int>();
                            }),
            0);
}

TEST_F(PoolTest, ACopyRefusedByTheServerClosesTheConnectionAndLandsNothing) {
  EXPECT_ANY_THROW(WithTransaction(*pool_, [](pqxx::dbtransaction& tx) {
    CopyIn copy(tx, "items", {"id", "name"});
    copy << std::make_tuple(1, std::string("one"));
    copy << std::make_tuple(1, std::string("duplicate key"));
    copy.Complete();
  }));
  EXPECT_EQ(Sample(registry_, "ferry_db_pool_connections_closed_total", "discarded"), 1);
  WithTransaction(*pool_, [](pqxx::dbtransaction& tx) {
    CopyIn copy(tx, "items", {"id", "name"});
    copy << std::make_tuple(2, std::string("two"));
    copy.Complete();
  });
  EXPECT_EQ(WithTransaction(
                *pool_,
                [](pqxx::dbtransaction& tx) {
                  return tx.exec("SELECT string_agg(name, ',') FROM items")[0][0].as<std::string>();
                }),
            "two");
}

TEST_F(PoolTest, DomainErrorsPassThroughAndKeepTheConnection) {
  const int before = BackendPid();
  try {
    WithTransaction(*pool_, [](pqxx::dbtransaction&) {
      throw Error(Reason::kDeviceNotFound, "no such device");
    });
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), Reason::kDeviceNotFound);
  }
  EXPECT_EQ(BackendPid(), before);
}

TEST_F(PoolTest, AnUnreachableDatabaseIsServiceUnavailableAfterRetries) {
  Pool dead(PoolOptions{.url = "postgresql://postgres@127.0.0.1:1/postgres", .max_size = 2},
            &registry_);
  try {
    WithTransaction(
        dead, [](pqxx::dbtransaction&) {},
        TxOptions{.max_attempts = 3, .base_backoff = std::chrono::milliseconds(1)});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), Reason::kServiceUnavailable);
    EXPECT_NE(std::string(e.what()).find("3 attempts"), std::string::npos);
  }
  EXPECT_EQ(Sample(registry_, "ferry_db_pool_connect_errors_total"), 3);
}

TEST_F(PoolTest, AFullPoolRefusesAfterTheAcquireTimeout) {
  Pool small(
      PoolOptions{
          .url = db_.url(), .max_size = 1, .acquire_timeout = std::chrono::milliseconds(100)},
      nullptr);
  Lease held = small.Acquire();
  try {
    (void)small.Acquire();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), Reason::kServiceUnavailable);
  }
}

}  // namespace
}  // namespace ferry::pg
