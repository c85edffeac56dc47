#include <stdexcept>

#include <gtest/gtest.h>

#include "core/pg/migrator.h"
#include "migrations/embedded.h"

namespace ferry::pg {
namespace {

TEST(MigrationParse, ReadsVersionNameAndChecksum) {
  const Migration m = ParseMigration("0007_add_things.sql", "CREATE TABLE t (a int);\n");
  EXPECT_EQ(m.version, 7);
  EXPECT_EQ(m.name, "0007_add_things.sql");
  EXPECT_TRUE(m.transactional);
  EXPECT_EQ(m.checksum.size(), 64u);
  EXPECT_NE(m.checksum,
            ParseMigration("0007_add_things.sql", "CREATE TABLE t (a int); \n").checksum);
}

TEST(MigrationParse, MarkerLineMakesAFileNonTransactional) {
  EXPECT_FALSE(ParseMigration("0002_idx.sql",
                              "-- ferry:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);\n")
                   .transactional);
  EXPECT_TRUE(
      ParseMigration("0002_idx.sql", "-- not -- ferry:no-transaction here\n").transactional);
}

TEST(MigrationParse, RefusesBadNamesAndDuplicateVersions) {
  EXPECT_THROW((void)ParseMigration("registry.sql", ""), std::invalid_argument);
  EXPECT_THROW((void)ParseMigration("0001-registry.sql", ""), std::invalid_argument);
  EXPECT_THROW((void)ParseMigration("0001_registry.txt", ""), std::invalid_argument);
  EXPECT_THROW((void)ParseMigration("0000_zero.sql", ""), std::invalid_argument);
  EXPECT_THROW((void)ParseMigrations({{"0001_a.sql", ""}, {"001_b.sql", ""}}),
               std::invalid_argument);
}

TEST(MigrationParse, OrdersByVersion) {
  const auto ms = ParseMigrations({{"0010_c.sql", ""}, {"0002_b.sql", ""}, {"0001_a.sql", ""}});
  ASSERT_EQ(ms.size(), 3u);
  EXPECT_EQ(ms[0].version, 1);
  EXPECT_EQ(ms[1].version, 2);
  EXPECT_EQ(ms[2].version, 10);
}

TEST(MigrationParse, SplitsStatementsAtLineEndingSemicolonsOnly) {
  const auto parts = SplitStatements(
      "-- ferry:no-transaction\n"
      "CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON t (x);\n"
      "INSERT INTO t VALUES ('a;\n'); \n"
      "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1;\n $body$ LANGUAGE sql;\n"
      "-- only a comment;\n");
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_NE(parts[0].find("CREATE INDEX CONCURRENTLY"), std::string::npos);
  EXPECT_NE(parts[1].find("'a;\n'"), std::string::npos);
  EXPECT_NE(parts[2].find("$body$ LANGUAGE sql;"), std::string::npos);
}

TEST(MigrationParse, EmbeddedFilesParse) {
  const auto ms = ParseMigrations(migrations::EmbeddedFiles());
  ASSERT_FALSE(ms.empty());
  EXPECT_EQ(ms.front().name, "0001_registry.sql");
  for (std::size_t i = 0; i < ms.size(); ++i) EXPECT_EQ(ms[i].version, static_cast<int>(i) + 1);
}

}  // namespace
}  // namespace ferry::pg
