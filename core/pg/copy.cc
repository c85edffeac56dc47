#include "core/pg/copy.h"

namespace ferry::pg {

namespace internal {
int& OpenCopies() {
  thread_local int open = 0;
  return open;
}
}  // namespace internal

CopyIn::CopyIn(pqxx::transaction_base& tx, const std::string& table,
               const std::vector<std::string>& columns)
    : stream_(tx, table, columns) {
  ++internal::OpenCopies();
}

CopyIn::~CopyIn() {
  // Left open by an exception: the counter stays up so that RunTransaction
  // discards the connection; it resets the counter for the next attempt.
}

void CopyIn::Complete() {
  stream_.complete();
  if (open_) {
    open_ = false;
    --internal::OpenCopies();
  }
}

}  // namespace ferry::pg
