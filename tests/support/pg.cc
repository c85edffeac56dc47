#include "tests/support/pg.h"

#include <cstdlib>
#include <random>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "core/pg/migrator.h"
#include "migrations/embedded.h"

namespace ferry::testing {

std::string AdminUrl() {
  const char* url = std::getenv("FERRY_TEST_POSTGRES_URL");
  if (url == nullptr || *url == '\0') {
    ADD_FAILURE() << "FERRY_TEST_POSTGRES_URL is not set: run PostgreSQL tests through "
                     "scripts/test (e.g. scripts/test --label pg)";
    throw std::runtime_error("FERRY_TEST_POSTGRES_URL is not set");
  }
  return url;
}

std::string WithDatabase(const std::string& url, const std::string& database) {
  const auto scheme = url.find("://");
  const auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  const auto query = url.find('?');
  std::string out = slash == std::string::npos ? url.substr(0, query) : url.substr(0, slash);
  out += "/" + database;
  if (query != std::string::npos) out += url.substr(query);
  return out;
}

TestDatabase::TestDatabase() : TestDatabase(AdminUrl()) {}

TestDatabase::TestDatabase(const std::string& admin_url) : admin_url_(admin_url) {
  std::random_device rd;
  name_ = "ferry_t_" + std::to_string(rd()) + std::to_string(rd() % 10000);
  pqxx::connection admin(admin_url_);
  pqxx::nontransaction tx(admin);
  tx.exec0("CREATE DATABASE " + tx.quote_name(name_));
  url_ = WithDatabase(admin_url_, name_);
}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection admin(admin_url_);
    pqxx::nontransaction tx(admin);
    tx.exec0("DROP DATABASE IF EXISTS " + tx.quote_name(name_) + " WITH (FORCE)");
  } catch (const std::exception& e) {
    // The server may be gone (a test stopped it); the database goes with it.
    std::fprintf(stderr, "note: could not drop test database %s: %s\n", name_.c_str(), e.what());
  }
}

void TestDatabase::Migrate() const {
  pqxx::connection conn(url_);
  pg::Migrator(pg::ParseMigrations(migrations::EmbeddedFiles())).Apply(conn);
}

long TestDatabase::Count(const std::string& sql) const {
  pqxx::connection conn(url_);
  pqxx::nontransaction tx(conn);
  return tx.exec(sql)[0][0].as<long>();
}

std::string TestDatabase::Text(const std::string& sql) const {
  pqxx::connection conn(url_);
  pqxx::nontransaction tx(conn);
  return tx.exec(sql)[0][0].as<std::string>();
}

}  // namespace ferry::testing
