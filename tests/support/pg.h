#pragma once

#include <memory>
#include <string>

namespace ferry::testing {

// The admin URL of the test PostgreSQL server (FERRY_TEST_POSTGRES_URL, set
// by scripts/test). A test that needs PostgreSQL fails, never skips, when it
// is missing.
[[nodiscard]] std::string AdminUrl();

// `url` with its database name replaced.
[[nodiscard]] std::string WithDatabase(const std::string& url, const std::string& database);

// A fresh, empty database for one test, dropped (with its connections) when
// the object goes.
class TestDatabase final {
 public:
  TestDatabase();
  explicit TestDatabase(const std::string& admin_url);
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  [[nodiscard]] const std::string& url() const { return url_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  // Applies Ferry's embedded migrations.
  void Migrate() const;
  // The first column of the first row of `sql`, on a connection of its own.
  [[nodiscard]] long Count(const std::string& sql) const;
  [[nodiscard]] std::string Text(const std::string& sql) const;

 private:
  std::string admin_url_;
  std::string name_;
  std::string url_;
};

}  // namespace ferry::testing
