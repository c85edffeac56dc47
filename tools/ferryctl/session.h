#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/grpcpp.h>

#include "core/auth/connection_string.h"
#include "ferry/v1/access.pb.h"

namespace ferry::ctl {

// A CLI11 check that a number of seconds is in [min, max] (NaN and
// infinities refused), so that no duration overflows on its way to a
// deadline or a request.
[[nodiscard]] CLI::Validator SecondsIn(double min, double max);

struct Options {
  std::string endpoint = "127.0.0.1:50051";
  bool json = false;
  double timeout_seconds = 10;
  std::string connection_string;
  long token_ttl_seconds = 3600;
  std::string tls_ca_file;
  bool tls = false;
  std::string tls_cert_file;
  std::string tls_key_file;
};

// One connection to a ferryd, with the credentials to sign tokens and the
// streams to print to. Commands derive from it.
class Session {
 public:
  Session(const Options& options, std::ostream& out, std::ostream& err);

  // A call context with a deadline of --timeout (none when `deadline` is
  // false: streams) and, given a connection string, a SAS token signed here
  // for --token-ttl seconds.
  [[nodiscard]] std::unique_ptr<grpc::ClientContext> Context(bool deadline = true) const;
  // Prints a failed call's status; returns the exit code it means
  // (kExitNotFound, kExitUnavailable or kExitRefused; see ferryctl.h).
  int Fail(const grpc::Status& status) const;
  // What a command that changes something prints on success: `m` as JSON
  // (--json) or `text` for people. Returns kExitOk.
  int Done(const google::protobuf::Message& m, const std::string& text) const;

 protected:
  const Options& options_;
  std::ostream& out_;
  std::ostream& err_;
  std::shared_ptr<grpc::Channel> channel_;
  std::optional<auth::ConnectionString> credentials_;
};

// Unix seconds now.
[[nodiscard]] std::int64_t NowSeconds();
// A message as one line of JSON with proto field names.
[[nodiscard]] std::string Json(const google::protobuf::Message& m);
// RFC 3339, or "-" for an unset time.
[[nodiscard]] std::string Time(const google::protobuf::Timestamp& t);
// Rows as aligned columns under a header.
void Table(std::ostream& out, const std::vector<std::string>& header,
           const std::vector<std::vector<std::string>>& rows);
// Parses an RFC 3339 time for an option; throws CLI::ValidationError.
[[nodiscard]] google::protobuf::Timestamp TimeOption(const std::string& option,
                                                     const std::string& text);
// The key slot a --slot option names ("secondary", else primary).
[[nodiscard]] v1::KeySlot SlotFromName(const std::string& slot);
// A JSON object of string fields in this order, for results that are no
// proto message.
[[nodiscard]] std::string JsonStrings(
    const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace ferry::ctl
