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
  EXPECT_EQ(m.checksum.rfind("sql-sha256:", 0), 0u) << m.checksum;
  EXPECT_EQ(m.checksum.size(), 11u + 64u);
  EXPECT_EQ(m.text_checksum.size(), 64u);
  // What PostgreSQL runs is held; comments and blanks are not.
  EXPECT_NE(m.checksum,
            ParseMigration("0007_add_things.sql", "CREATE TABLE t (b int);\n").checksum);
  EXPECT_NE(m.checksum,
            ParseMigration("0007_add_things.sql", "CREATE TABLE t (a  int);\n").checksum);
  EXPECT_NE(
      m.checksum,
      ParseMigration("0007_add_things.sql", "CREATE TABLE t (a int);\nSELECT '--';\n").checksum);
  EXPECT_EQ(m.checksum, ParseMigration("0007_add_things.sql",
                                       "-- why: a note\n\nCREATE TABLE t (a int); -- it\n\n")
                            .checksum);
  // A comment marker inside a literal is SQL, not a comment.
  EXPECT_NE(ParseMigration("0001_a.sql", "SELECT '-- a';\n").checksum,
            ParseMigration("0001_a.sql", "SELECT '-- b';\n").checksum);
  EXPECT_NE(ParseMigration("0001_a.sql", "SELECT $x$ -- a $x$;\n").checksum,
            ParseMigration("0001_a.sql", "SELECT $x$ -- b $x$;\n").checksum);
  // The transaction mode is part of what runs.
  EXPECT_NE(m.checksum, ParseMigration("0007_add_things.sql",
                                       "-- ferry:no-transaction\nCREATE TABLE t (a int);\n")
                            .checksum);
}

TEST(MigrationParse, MatchesItsOwnOlderRecordsOnly) {
  const std::string text = "CREATE TABLE t (a int);\n";
  const Migration m = ParseMigration("0001_a.sql", text);
  EXPECT_EQ(m.Matches(m.checksum), Migration::Match::kSame);
  EXPECT_EQ(m.Matches(m.text_checksum), Migration::Match::kLegacySame);
  EXPECT_EQ(m.Matches(ParseMigration("0001_a.sql", "CREATE TABLE t (b int);\n").checksum),
            Migration::Match::kChanged);

  // A reworded comment names the whole-text checksum of the old wording.
  const Migration old = ParseMigration("0001_a.sql", "-- old words\n" + text);
  const Migration reworded = ParseMigration(
      "0001_a.sql", "-- new words\n-- ferry:amends text-sha256=" + old.text_checksum + " " +
                        old.checksum + "\n" + text);
  EXPECT_EQ(reworded.checksum, old.checksum);
  EXPECT_EQ(reworded.Matches(old.text_checksum), Migration::Match::kLegacySame);
  // The same line on a file whose SQL changed does not make the old record match.
  const Migration changed =
      ParseMigration("0001_a.sql", "-- ferry:amends text-sha256=" + old.text_checksum + " " +
                                       old.checksum + "\nCREATE TABLE t (b int);\n");
  EXPECT_EQ(changed.Matches(old.text_checksum), Migration::Match::kChanged);
  EXPECT_THROW((void)ParseMigration("0001_a.sql", "-- ferry:amends nonsense\n"),
               std::invalid_argument);
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
      "SELECT 2; -- a comment after the end\n"
      "-- only a comment;\n");
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_NE(parts[0].find("CREATE INDEX CONCURRENTLY"), std::string::npos);
  EXPECT_NE(parts[1].find("'a;\n'"), std::string::npos);
  EXPECT_NE(parts[2].find("$body$ LANGUAGE sql;"), std::string::npos);
  EXPECT_NE(parts[3].find("SELECT 2;"), std::string::npos);
}

TEST(MigrationParse, EmbeddedFilesParse) {
  const auto ms = ParseMigrations(migrations::EmbeddedFiles());
  ASSERT_FALSE(ms.empty());
  EXPECT_EQ(ms.front().name, "0001_registry.sql");
  for (std::size_t i = 0; i < ms.size(); ++i) EXPECT_EQ(ms[i].version, static_cast<int>(i) + 1);
}

// A `-- ferry:amends` line is only ever written for a comment-only change:
// the old wording's SQL checksum must be the file's own.
TEST(MigrationParse, EmbeddedAmendmentsAreCommentOnly) {
  int amended = 0;
  for (const Migration& m : ParseMigrations(migrations::EmbeddedFiles())) {
    for (const Amendment& a : m.amends) {
      ++amended;
      EXPECT_EQ(a.checksum, m.checksum) << m.name << " amends text " << a.text_checksum;
    }
  }
  EXPECT_EQ(amended, 6);  // 0001, 0002, 0004-0007: the design document renamed
}

}  // namespace
}  // namespace ferry::pg
