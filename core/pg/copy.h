#pragma once

#include <string>
#include <vector>

#include <pqxx/stream_to>
#include <pqxx/transaction_base>

namespace ferry::pg {

// COPY FROM STDIN into `table` inside a RunTransaction body: the fast path
// for bulk rows. If the attempt fails while a CopyIn is open (not yet
// completed), RunTransaction closes the connection instead of pooling it,
// since the session may still be in COPY mode. Column names are not quoted
// by libpqxx: quote reserved words yourself ("\"offset\"").
class CopyIn final {
 public:
  CopyIn(pqxx::transaction_base& tx, const std::string& table,
         const std::vector<std::string>& columns);
  ~CopyIn();
  CopyIn(const CopyIn&) = delete;
  CopyIn& operator=(const CopyIn&) = delete;

  template <typename Row>
  CopyIn& operator<<(const Row& row) {
    stream_ << row;
    return *this;
  }

  // Ends the COPY and checks for errors; required before commit.
  void Complete();

 private:
  pqxx::stream_to stream_;
  bool open_ = true;
};

namespace internal {
// Open CopyIn objects on this thread; RunTransaction reads it after a failure.
int& OpenCopies();
}  // namespace internal

}  // namespace ferry::pg
