#include "core/pg/migrator.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <stdexcept>

#include <fmt/format.h>
#include <openssl/sha.h>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/pqxx>
#include <pqxx/transaction>

#include "core/error.h"
#include "core/log.h"
#include "core/pg/advisory_lock.h"

namespace ferry::pg {
namespace {

constexpr std::string_view kNoTransactionMarker = "-- ferry:no-transaction";

std::string Sha256Hex(std::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string hex;
  hex.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char b : digest) hex += fmt::format("{:02x}", b);
  return hex;
}

bool HasMarkerLine(std::string_view text) {
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line == kNoTransactionMarker) return true;
    pos = end + 1;
  }
  return false;
}

bool OnlyCommentsOrSpace(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    if (std::isspace(static_cast<unsigned char>(s[i]))) {
      ++i;
    } else if (s.substr(i, 2) == "--") {
      i = s.find('\n', i);
      if (i == std::string_view::npos) return true;
    } else {
      return false;
    }
  }
  return true;
}

// Walks SQL text once, telling `visit` which piece is a line comment, a
// quoted literal or dollar-quoted body, or plain code. The one place that
// knows SQL's lexical layers: the statement splitter and the comment-blind
// checksum both read through it.
enum class SqlPiece { kCode, kComment, kQuoted };

template <typename Visit>
void ScanSql(std::string_view sql, Visit&& visit) {
  std::size_t i = 0;
  while (i < sql.size()) {
    const char c = sql[i];
    std::size_t end = i + 1;
    SqlPiece kind = SqlPiece::kCode;
    if (c == '-' && sql.substr(i, 2) == "--") {
      kind = SqlPiece::kComment;
      end = sql.find('\n', i);  // the newline itself is code
      if (end == std::string_view::npos) end = sql.size();
    } else if (c == '\'') {
      kind = SqlPiece::kQuoted;
      end = sql.find('\'', i + 1);
      end = end == std::string_view::npos ? sql.size() : end + 1;
    } else if (c == '$') {
      const auto close = sql.find('$', i + 1);
      if (close != std::string_view::npos) {
        const std::string_view tag = sql.substr(i, close - i + 1);
        const bool valid = std::all_of(tag.begin() + 1, tag.end() - 1, [](char t) {
          return std::isalnum(static_cast<unsigned char>(t)) || t == '_';
        });
        if (valid) {
          kind = SqlPiece::kQuoted;
          end = sql.find(tag, close + 1);
          end = end == std::string_view::npos ? sql.size() : end + tag.size();
        }
      }
    }
    visit(kind, sql.substr(i, end - i));
    i = end;
  }
}

// The text PostgreSQL acts on: comments dropped, each line's trailing blanks
// trimmed, blank lines dropped, and whether it runs in a transaction. Its
// hash is what an applied file is held to, so a comment may be reworded.
std::string Canonical(std::string_view text, bool transactional) {
  std::string code;
  ScanSql(text, [&](SqlPiece kind, std::string_view piece) {
    if (kind != SqlPiece::kComment) code += piece;
  });
  std::string out = transactional ? "" : "no-transaction\n";
  std::size_t pos = 0;
  while (pos < code.size()) {
    std::size_t end = code.find('\n', pos);
    if (end == std::string::npos) end = code.size();
    std::string_view line(code.data() + pos, end - pos);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
      line.remove_suffix(1);
    if (!line.empty()) out.append(line).append("\n");
    pos = end + 1;
  }
  return out;
}

constexpr std::string_view kSqlChecksumPrefix = "sql-sha256:";
constexpr std::string_view kAmendsMarker = "-- ferry:amends ";

// `-- ferry:amends text-sha256=<hex> sql-sha256:<hex>` lines: an earlier
// wording of this file (by the whole-text checksum databases recorded before
// checksums ignored comments) and the SQL checksum it had.
std::vector<Amendment> ReadAmendments(std::string_view text) {
  std::vector<Amendment> out;
  for (std::size_t pos = text.find(kAmendsMarker); pos != std::string_view::npos;
       pos = text.find(kAmendsMarker, pos + 1)) {
    if (pos != 0 && text[pos - 1] != '\n') continue;
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line =
        text.substr(pos + kAmendsMarker.size(), end - pos - kAmendsMarker.size());
    const auto space = line.find(' ');
    constexpr std::string_view kText = "text-sha256=";
    if (space == std::string_view::npos || line.substr(0, kText.size()) != kText) {
      throw std::invalid_argument("bad '-- ferry:amends' line: " + std::string(line));
    }
    Amendment a;
    a.text_checksum = std::string(line.substr(kText.size(), space - kText.size()));
    a.checksum = std::string(line.substr(space + 1));
    while (!a.checksum.empty() && std::isspace(static_cast<unsigned char>(a.checksum.back())))
      a.checksum.pop_back();
    if (a.text_checksum.size() != 64 ||
        a.checksum.substr(0, kSqlChecksumPrefix.size()) != kSqlChecksumPrefix) {
      throw std::invalid_argument("bad '-- ferry:amends' line: " + std::string(line));
    }
    out.push_back(std::move(a));
  }
  return out;
}

void EnsureTable(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  tx.exec0(
      "CREATE TABLE IF NOT EXISTS ferry_schema_migrations ("
      " version integer PRIMARY KEY,"
      " name text NOT NULL,"
      " checksum text NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now())");
}

std::map<int, std::pair<std::string, std::string>> ReadApplied(pqxx::connection& conn) {
  std::map<int, std::pair<std::string, std::string>> applied;
  pqxx::nontransaction tx(conn);
  const pqxx::result exists = tx.exec("SELECT to_regclass('ferry_schema_migrations') IS NOT NULL");
  if (!exists[0][0].as<bool>()) return applied;
  for (const auto& row : tx.exec("SELECT version, name, checksum FROM ferry_schema_migrations")) {
    applied[row[0].as<int>()] = {row[1].as<std::string>(), row[2].as<std::string>()};
  }
  return applied;
}

}  // namespace

Migration ParseMigration(std::string_view file_name, std::string_view text) {
  const auto underscore = file_name.find('_');
  const bool sql = file_name.size() > 4 && file_name.substr(file_name.size() - 4) == ".sql";
  int version = 0;
  const auto [ptr, ec] = std::from_chars(
      file_name.data(), file_name.data() + std::min(underscore, file_name.size()), version);
  if (underscore == std::string_view::npos || !sql || ec != std::errc() ||
      ptr != file_name.data() + underscore || version <= 0) {
    throw std::invalid_argument("migration file '" + std::string(file_name) +
                                "' is not named NNNN_name.sql");
  }
  Migration m;
  m.version = version;
  m.name = std::string(file_name);
  m.sql = std::string(text);
  m.transactional = !HasMarkerLine(text);
  m.checksum = std::string(kSqlChecksumPrefix) + Sha256Hex(Canonical(text, m.transactional));
  m.text_checksum = Sha256Hex(text);
  try {
    m.amends = ReadAmendments(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(m.name + ": " + e.what());
  }
  return m;
}

std::vector<Migration> ParseMigrations(
    const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<Migration> out;
  out.reserve(files.size());
  for (const auto& [name, text] : files) out.push_back(ParseMigration(name, text));
  std::sort(out.begin(), out.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (std::size_t i = 1; i < out.size(); ++i) {
    if (out[i].version == out[i - 1].version) {
      throw std::invalid_argument("migrations '" + out[i - 1].name + "' and '" + out[i].name +
                                  "' share version " + std::to_string(out[i].version));
    }
  }
  return out;
}

std::vector<std::string> SplitStatements(std::string_view sql) {
  std::vector<std::string> out;
  std::string current;
  // A statement ends at a semicolon of code followed only by blanks or a
  // comment up to the end of its line.
  bool pending_end = false;
  auto flush = [&] {
    if (!OnlyCommentsOrSpace(current)) out.push_back(current);
    current.clear();
    pending_end = false;
  };
  ScanSql(sql, [&](SqlPiece kind, std::string_view piece) {
    const bool blank = piece == " " || piece == "\t" || piece == "\r" || piece == "\n";
    if (pending_end && kind != SqlPiece::kComment && !(kind == SqlPiece::kCode && blank)) {
      pending_end = false;
    }
    current += piece;
    if (kind != SqlPiece::kCode) return;
    if (piece == ";") pending_end = true;
    if (piece == "\n" && pending_end) flush();
  });
  if (pending_end) flush();
  if (!OnlyCommentsOrSpace(current)) out.push_back(current);
  return out;
}

Migration::Match Migration::Matches(std::string_view recorded) const {
  if (recorded == checksum) return Match::kSame;
  if (recorded == text_checksum) return Match::kLegacySame;
  for (const Amendment& a : amends) {
    if (recorded == a.text_checksum && a.checksum == checksum) return Match::kLegacySame;
  }
  return Match::kChanged;
}

Migrator::Migrator(std::vector<Migration> migrations) : migrations_(std::move(migrations)) {}

SchemaStatus Migrator::Status(pqxx::connection& conn) const {
  const auto applied = ReadApplied(conn);
  SchemaStatus status;
  for (const Migration& m : migrations_) {
    const auto it = applied.find(m.version);
    if (it == applied.end()) {
      status.pending.push_back(m.name);
    } else if (m.Matches(it->second.second) == Migration::Match::kChanged) {
      status.changed.push_back(m.name);
    }
  }
  for (const auto& [version, record] : applied) {
    const bool known = std::any_of(migrations_.begin(), migrations_.end(),
                                   [v = version](const Migration& m) { return m.version == v; });
    if (!known) status.unknown_versions.push_back(version);
  }
  return status;
}

std::vector<std::string> Migrator::Apply(pqxx::connection& conn) const {
  static const auto logger = log::Get("migrate");
  LockForSession(conn, AdvisoryLock::kMigrations);
  struct Unlock {
    pqxx::connection& conn;
    ~Unlock() { UnlockForSession(conn, AdvisoryLock::kMigrations); }
  } unlock{conn};

  EnsureTable(conn);
  const auto applied = ReadApplied(conn);
  for (const Migration& m : migrations_) {
    const auto it = applied.find(m.version);
    if (it == applied.end()) continue;
    switch (m.Matches(it->second.second)) {
      case Migration::Match::kSame:
      case Migration::Match::kLegacySame:
        // Recorded by a Ferry that checksummed the whole text, same SQL. The
        // record is left as it is: replicas of that older Ferry still running
        // during a rolling upgrade check it for their readiness.
        break;
      case Migration::Match::kChanged:
        throw Error(Reason::kServerError,
                    fmt::format("migration {} was changed after it was applied (applied checksum "
                                "{}, file checksum {}); restore the file and put the change in a "
                                "new migration",
                                m.name, it->second.second, m.checksum));
    }
  }
  for (const auto& [version, record] : applied) {
    const bool known = std::any_of(migrations_.begin(), migrations_.end(),
                                   [v = version](const Migration& m) { return m.version == v; });
    if (!known) {
      logger->warn("database has a migration this build does not know version={} name=\"{}\"",
                   version, record.first);
    }
  }

  std::vector<std::string> done;
  for (const Migration& m : migrations_) {
    if (applied.count(m.version) != 0) continue;
    try {
      if (m.transactional) {
        pqxx::work tx(conn);
        tx.exec(m.sql);
        tx.exec_params(
            "INSERT INTO ferry_schema_migrations (version, name, checksum) "
            "VALUES ($1, $2, $3)",
            m.version, m.name, m.checksum);
        tx.commit();
      } else {
        for (const std::string& statement : SplitStatements(m.sql)) {
          pqxx::nontransaction tx(conn);
          tx.exec(statement);
        }
        pqxx::work tx(conn);
        tx.exec_params(
            "INSERT INTO ferry_schema_migrations (version, name, checksum) "
            "VALUES ($1, $2, $3)",
            m.version, m.name, m.checksum);
        tx.commit();
      }
    } catch (const pqxx::sql_error& e) {
      throw Error(Reason::kServerError,
                  fmt::format("migration {} failed and was rolled back: {}", m.name, e.what()));
    }
    logger->info("migration applied version={} name=\"{}\" transactional={}", m.version, m.name,
                 m.transactional);
    done.push_back(m.name);
  }
  return done;
}

}  // namespace ferry::pg
