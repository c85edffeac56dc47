#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "core/error.h"
#include "core/pg/migrator.h"
#include "migrations/embedded.h"
#include "tests/support/pg.h"

namespace ferry::pg {
namespace {

std::vector<Migration> Files(const std::string& second_text) {
  return ParseMigrations({
      {"0001_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n"},
      {"0002_b.sql", second_text},
      {"0003_idx.sql",
       "-- ferry:no-transaction\n"
       "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_id_idx ON a (id);\n"
       "CREATE INDEX CONCURRENTLY IF NOT EXISTS b_id_idx ON b (id);\n"},
  });
}

const std::string kB = "CREATE TABLE b (id int PRIMARY KEY);\nINSERT INTO b VALUES (1);\n";

int Count(pqxx::connection& conn, const std::string& sql) {
  pqxx::nontransaction tx(conn);
  return tx.exec(sql)[0][0].as<int>();
}

TEST(Migrator, FreshDatabaseGetsEveryFileInOrderOnce) {
  testing::TestDatabase db;
  pqxx::connection conn(db.url());
  const Migrator migrator(Files(kB));
  EXPECT_EQ(migrator.Status(conn).pending.size(), 3u);
  const auto applied = migrator.Apply(conn);
  EXPECT_EQ(applied, (std::vector<std::string>{"0001_a.sql", "0002_b.sql", "0003_idx.sql"}));
  EXPECT_TRUE(migrator.Status(conn).ready());
  EXPECT_EQ(Count(conn, "SELECT count(*) FROM ferry_schema_migrations"), 3);
  EXPECT_EQ(Count(conn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'b_id_idx'"), 1);
}

TEST(Migrator, ReRunAppliesNothing) {
  testing::TestDatabase db;
  pqxx::connection conn(db.url());
  const Migrator migrator(Files(kB));
  (void)migrator.Apply(conn);
  EXPECT_TRUE(migrator.Apply(conn).empty());
  EXPECT_EQ(Count(conn, "SELECT count(*) FROM b"), 1);
}

TEST(Migrator, AChangedAppliedFileIsRefusedByName) {
  testing::TestDatabase db;
  pqxx::connection conn(db.url());
  (void)Migrator(Files(kB)).Apply(conn);
  const Migrator changed(Files(kB + "INSERT INTO b VALUES (2);\n"));
  try {
    (void)changed.Apply(conn);
    FAIL() << "a changed file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("0002_b.sql was changed after it was applied"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(changed.Status(conn).changed, std::vector<std::string>{"0002_b.sql"});
  EXPECT_FALSE(changed.Status(conn).ready());
}

TEST(Migrator, AReworkedCommentIsNotAChange) {
  testing::TestDatabase db;
  pqxx::connection conn(db.url());
  (void)Migrator(Files(kB)).Apply(conn);
  const Migrator commented(Files("-- why b exists\n" + kB + "-- and a note at the end\n"));
  EXPECT_TRUE(commented.Status(conn).ready());
  EXPECT_TRUE(commented.Apply(conn).empty());
}

// A database migrated before checksums ignored comments holds each file's
// whole-text SHA-256: an unchanged file, or one whose comments were reworded
// with a `-- ferry:amends` line, is accepted and its record left for the older
// replicas still reading it; a changed one is still refused.
TEST(Migrator, WholeTextRecordsOfOlderFerrysStillMatch) {
  testing::TestDatabase db;
  pqxx::connection conn(db.url());
  const Migrator original(Files("-- old wording\n" + kB));
  (void)original.Apply(conn);
  auto record_legacy = [&](int version, const std::string& text_checksum) {
    pqxx::work tx(conn);
    tx.exec_params("UPDATE ferry_schema_migrations SET checksum = $2 WHERE version = $1", version,
                   text_checksum);
    tx.commit();
  };
  for (const Migration& m : original.migrations()) record_legacy(m.version, m.text_checksum);
  const Migration& old_b = original.migrations()[1];

  const Migrator forged(Files("-- ferry:amends text-sha256=" + old_b.text_checksum + " " +
                              old_b.checksum + "\n" + kB + "INSERT INTO b VALUES (2);\n"));
  EXPECT_EQ(forged.Status(conn).changed, std::vector<std::string>{"0002_b.sql"});
  EXPECT_THROW((void)forged.Apply(conn), Error);

  const Migrator reworded(Files("-- new wording\n-- ferry:amends text-sha256=" +
                                old_b.text_checksum + " " + old_b.checksum + "\n" + kB));
  EXPECT_TRUE(reworded.Status(conn).ready());
  EXPECT_TRUE(reworded.Apply(conn).empty());
  pqxx::nontransaction tx(conn);
  for (const Migration& m : original.migrations()) {
    EXPECT_EQ(tx.exec_params1("SELECT checksum FROM ferry_schema_migrations WHERE version = $1",
                              m.version)[0]
                  .as<std::string>(),
              m.text_checksum)
        << m.name;
  }
}

TEST(Migrator, AFailingFileRollsBackAndIsNotRecorded) {
  testing::TestDatabase db;
  pqxx::connection conn(db.url());
  const Migrator bad(Files("CREATE TABLE b (id int PRIMARY KEY);\nSELECT no_such_function();\n"));
  try {
    (void)bad.Apply(conn);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("0002_b.sql failed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(Count(conn, "SELECT count(*) FROM ferry_schema_migrations"), 1);
  EXPECT_EQ(Count(conn, "SELECT count(*) FROM pg_tables WHERE tablename = 'b'"), 0);
  // Fixed, it applies.
  EXPECT_EQ(Migrator(Files(kB)).Apply(conn).size(), 2u);
}

TEST(Migrator, ConcurrentStartsApplyEachFileOnce) {
  testing::TestDatabase db;
  const Migrator migrator(Files(kB));
  constexpr int kReplicas = 6;
  std::vector<std::thread> threads;
  std::atomic<int> applied{0}, failed{0};
  for (int i = 0; i < kReplicas; ++i) {
    threads.emplace_back([&] {
      try {
        pqxx::connection conn(db.url());
        applied += static_cast<int>(migrator.Apply(conn).size());
      } catch (const std::exception&) {
        ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(applied.load(), 3);
  pqxx::connection conn(db.url());
  EXPECT_EQ(Count(conn, "SELECT count(*) FROM b"), 1);
}

TEST(Migrator, EmbeddedMigrationsApplyToAFreshDatabase) {
  testing::TestDatabase db;
  pqxx::connection conn(db.url());
  const Migrator migrator(ParseMigrations(migrations::EmbeddedFiles()));
  EXPECT_EQ(migrator.Apply(conn).size(), migrator.migrations().size());
  EXPECT_TRUE(migrator.Status(conn).ready());
}

}  // namespace
}  // namespace ferry::pg
