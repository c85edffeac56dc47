#include "tools/ferryctl/session.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <nlohmann/json.hpp>

#include "core/time_text.h"
#include "tools/ferryctl/ferryctl.h"

namespace ferry::ctl {

CLI::Validator SecondsIn(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        double v = 0;
        try {
          std::size_t used = 0;
          v = std::stod(text, &used);
          if (used != text.size()) return "not a number of seconds: " + text;
        } catch (const std::exception&) {
          return "not a number of seconds: " + text;
        }
        if (!(v >= min && v <= max)) return fmt::format("must be {:g} to {:g} seconds", min, max);
        return "";
      },
      fmt::format("SECONDS in [{:g}, {:g}]", min, max));
}

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const Options& o) {
  if (!o.tls && o.tls_ca_file.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  if (!o.tls_ca_file.empty()) ssl.pem_root_certs = ReadFile(o.tls_ca_file);
  if (!o.tls_cert_file.empty()) ssl.pem_cert_chain = ReadFile(o.tls_cert_file);
  if (!o.tls_key_file.empty()) ssl.pem_private_key = ReadFile(o.tls_key_file);
  return grpc::SslCredentials(ssl);
}

}  // namespace

std::int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Session::Session(const Options& options, std::ostream& out, std::ostream& err)
    : options_(options),
      out_(out),
      err_(err),
      channel_(grpc::CreateChannel(options.endpoint, ChannelCredentials(options))) {
  if (!options.connection_string.empty()) {
    credentials_ = auth::ParseConnectionString(options.connection_string);
  }
}

std::unique_ptr<grpc::ClientContext> Session::Context(bool deadline) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (deadline) {
    ctx->set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<long>(options_.timeout_seconds * 1000)));
  }
  if (credentials_) {
    ctx->AddMetadata("authorization",
                     credentials_->Token(NowSeconds() + options_.token_ttl_seconds));
  }
  return ctx;
}

int Session::Fail(const grpc::Status& status) const {
  err_ << "ferryctl: " << status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED && !credentials_) {
    err_ << " (set FERRY_CONNECTION_STRING or --connection-string)\n";
    return kExitRefused;
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    err_ << " (is ferryd running and ready at " << options_.endpoint << "?)\n";
    return kExitUnavailable;
  }
  err_ << "\n";
  return status.error_code() == grpc::StatusCode::NOT_FOUND ? kExitNotFound : kExitRefused;
}

int Session::Done(const google::protobuf::Message& m, const std::string& text) const {
  out_ << (options_.json ? Json(m) : text) << "\n";
  return kExitOk;
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return google::protobuf::util::TimeUtil::ToString(t);
}

void Table(std::ostream& out, const std::vector<std::string>& header,
           const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    for (std::size_t i = 0; i < r.size(); ++i) {
      out << r[i];
      if (i + 1 < r.size()) out << std::string(width[i] - r[i].size() + 2, ' ');
    }
    out << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

google::protobuf::Timestamp TimeOption(const std::string& option, const std::string& text) {
  const auto t = ParseTime(text);
  if (!t)
    throw CLI::ValidationError(option,
                               "'" + text + "' is not an RFC 3339 time (2026-11-26T08:00:00Z)");
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(ToUnixMicros(*t));
}

v1::KeySlot SlotFromName(const std::string& slot) {
  return slot == "secondary" ? v1::KEY_SLOT_SECONDARY : v1::KEY_SLOT_PRIMARY;
}

std::string JsonStrings(const std::vector<std::pair<std::string, std::string>>& fields) {
  nlohmann::ordered_json object = nlohmann::ordered_json::object();
  for (const auto& [name, value] : fields) object[name] = value;
  return object.dump();
}

}  // namespace ferry::ctl
