#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <pqxx/connection>

namespace ferry::pg {

// An earlier wording of a migration file, named by a line
// `-- ferry:amends text-sha256=<hex> sql-sha256:<hex>`: databases migrated
// before checksums ignored comments recorded the whole text's SHA-256; such a
// record still matches if the SQL checksum given here is the file's own, so a
// comment can be reworded without a code change slipping through.
struct Amendment {
  std::string text_checksum;  // hex SHA-256 of the earlier whole text
  std::string checksum;       // that text's SQL checksum, "sql-sha256:<hex>"
};

// One numbered SQL file of migrations/: `NNNN_name.sql`. A file whose text
// contains the line `-- ferry:no-transaction` runs outside a transaction (for
// CREATE INDEX CONCURRENTLY and the like), one statement at a time, and must
// be idempotent: if it fails half-way it is run again from the start.
struct Migration {
  int version = 0;
  std::string name;  // file name, e.g. "0001_registry.sql"
  std::string sql;
  bool transactional = true;
  // "sql-sha256:<hex>": SHA-256 of the SQL with comments, trailing blanks and
  // blank lines removed, and of whether it runs in a transaction. Rewording a
  // comment keeps it; any change to what PostgreSQL runs changes it.
  std::string checksum;
  std::string text_checksum;  // hex SHA-256 of the whole text (older records)
  std::vector<Amendment> amends;

  enum class Match { kSame, kLegacySame, kChanged };
  // Whether a recorded checksum is this file's: its SQL checksum, or an older
  // record of the same SQL (kLegacySame; left as it is, since an older
  // replica's readiness check still reads it).
  [[nodiscard]] Match Matches(std::string_view recorded) const;
};

// Parses a file; throws std::invalid_argument on a badly named file or a
// malformed `-- ferry:amends` line.
[[nodiscard]] Migration ParseMigration(std::string_view file_name, std::string_view text);

// Parses and orders a set of files; throws std::invalid_argument on a
// duplicate version.
[[nodiscard]] std::vector<Migration> ParseMigrations(
    const std::vector<std::pair<std::string, std::string>>& files);

// Splits a no-transaction file into statements at semicolons that end a line
// (outside quotes, dollar-quoted bodies and comments, so `; -- why` ends one
// too). Comments-only pieces are dropped.
[[nodiscard]] std::vector<std::string> SplitStatements(std::string_view sql);

struct SchemaStatus {
  std::vector<std::string> pending;   // known files not yet applied
  std::vector<std::string> changed;   // applied files whose text changed since
  std::vector<int> unknown_versions;  // applied by a newer Ferry
  [[nodiscard]] bool ready() const { return pending.empty() && changed.empty(); }
};

// Applies migrations in order, each in its own transaction with its record in
// ferry_schema_migrations (version, name, checksum, applied_at). Replicas that
// start together serialise on a session advisory lock, so each file is
// applied once. Throws ferry::Error(kServerError) when an applied file has
// changed (naming the file and both checksums) or a file fails to apply
// (naming the file and PostgreSQL's message); what failed is rolled back.
class Migrator final {
 public:
  explicit Migrator(std::vector<Migration> migrations);

  // Uses `conn` (a dedicated connection: it takes a session advisory lock)
  // and returns the names of the files applied by this call.
  std::vector<std::string> Apply(pqxx::connection& conn) const;

  // Compares what is applied with the known files; no locks, no writes.
  [[nodiscard]] SchemaStatus Status(pqxx::connection& conn) const;

  [[nodiscard]] const std::vector<Migration>& migrations() const { return migrations_; }

 private:
  std::vector<Migration> migrations_;
};

}  // namespace ferry::pg
