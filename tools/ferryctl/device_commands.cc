#include "tools/ferryctl/device_commands.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "core/auth/connection_string.h"
#include "ferry/v1/registry.grpc.pb.h"
#include "tools/ferryctl/ferryctl.h"

namespace ferry::ctl {
namespace {

std::string StatusName(v1::DeviceStatus s) {
  return s == v1::DEVICE_STATUS_DISABLED ? "Disabled" : "Enabled";
}

// A file that holds secrets: written under a temporary name created with
// mode 0600 next to `path`, renamed over `path` by Commit, removed if the
// object goes without Commit (a failed export leaves no partial file).
class SecretFile final {
 public:
  explicit SecretFile(std::string path) : path_(std::move(path)), temp_(path_ + ".XXXXXX") {
    const int fd = ::mkstemp(temp_.data());
    if (fd < 0) throw std::runtime_error("cannot create a file next to '" + path_ + "'");
    ::close(fd);
    stream_.open(temp_, std::ios::trunc);
    if (!stream_) {
      ::unlink(temp_.c_str());
      throw std::runtime_error("cannot write '" + temp_ + "'");
    }
  }
  ~SecretFile() {
    if (!committed_) ::unlink(temp_.c_str());
  }
  SecretFile(const SecretFile&) = delete;
  SecretFile& operator=(const SecretFile&) = delete;

  std::ostream& stream() { return stream_; }
  // Throws when the data could not be written or renamed.
  void Commit() {
    stream_.close();
    if (stream_.fail()) throw std::runtime_error("cannot write '" + temp_ + "'");
    if (std::rename(temp_.c_str(), path_.c_str()) != 0) {
      throw std::runtime_error("cannot rename '" + temp_ + "' to '" + path_ + "'");
    }
    committed_ = true;
  }

 private:
  std::string path_;
  std::string temp_;
  std::ofstream stream_;
  bool committed_ = false;
};

// `text` with each run of line breaks (and the spaces around them) as one
// space: a reason on one line of a report.
std::string OneLine(const std::string& text) {
  std::string out;
  bool pending_space = false;
  for (const char c : text) {
    if (c == '\n' || c == '\r') {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) {
      if (c == ' ') continue;
      out += ' ';
      pending_space = false;
    }
    out += c;
  }
  return out;
}

// Refused by ferryd's rate limits (the reason prefixes the message).
bool Throttled(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
         s.error_message().starts_with("ThrottlingException");
}

bool Unreachable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

class DeviceClient final : public Session {
 public:
  using Session::Session;

  void PrintDevice(const v1::Device& d) const {
    if (options_.json) {
      out_ << Json(d) << "\n";
      return;
    }
    Table(out_, {"FIELD", "VALUE"},
          {{"device_id", d.device_id()},
           {"status", StatusName(d.status())},
           {"status_reason", d.status_reason().empty() ? "-" : d.status_reason()},
           {"status_update_time", Time(d.status_update_time())},
           {"generation_id", d.generation_id()},
           {"etag", d.etag()},
           {"primary_key", d.authentication().primary_key()},
           {"secondary_key", d.authentication().secondary_key()},
           {"connection_state",
            d.connection_state() == v1::CONNECTION_STATE_CONNECTED ? "Connected" : "Disconnected"},
           {"created_time", Time(d.created_time())}});
  }

  int Create(const std::string& id, const std::string& primary, const std::string& secondary,
             bool disabled, const std::string& reason) {
    v1::CreateDeviceRequest req;
    v1::Device* d = req.mutable_device();
    d->set_device_id(id);
    d->set_status(disabled ? v1::DEVICE_STATUS_DISABLED : v1::DEVICE_STATUS_ENABLED);
    d->set_status_reason(reason);
    d->mutable_authentication()->set_primary_key(primary);
    d->mutable_authentication()->set_secondary_key(secondary);
    v1::Device resp;
    const grpc::Status s = registry_->CreateDevice(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintDevice(resp);
    return kExitOk;
  }

  int Get(const std::string& id) {
    v1::GetDeviceRequest req;
    req.set_device_id(id);
    v1::Device resp;
    const grpc::Status s = registry_->GetDevice(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintDevice(resp);
    return kExitOk;
  }

  int List(int page_size, std::string page_token, bool one_page) {
    std::vector<std::vector<std::string>> rows;
    do {
      v1::ListDevicesRequest req;
      req.set_page_size(page_size);
      req.set_page_token(page_token);
      v1::ListDevicesResponse resp;
      const grpc::Status s = registry_->ListDevices(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      for (const v1::Device& d : resp.devices()) {
        if (options_.json) {
          out_ << Json(d) << "\n";
        } else {
          rows.push_back({d.device_id(), StatusName(d.status()), d.generation_id(), d.etag(),
                          d.status_reason().empty() ? "-" : d.status_reason()});
        }
      }
      page_token = resp.next_page_token();
    } while (!one_page && !page_token.empty());
    if (!options_.json) {
      Table(out_, {"DEVICE ID", "STATUS", "GENERATION", "ETAG", "REASON"}, rows);
      if (one_page && !page_token.empty()) out_ << "next page: --page-token " << page_token << "\n";
    }
    return kExitOk;
  }

  // Read, change, write with the etag read: a concurrent change is refused
  // (PreconditionFailed) rather than overwritten.
  int Update(const std::string& id, std::optional<bool> enabled,
             const std::optional<std::string>& reason, const std::string& primary,
             const std::string& secondary, const std::string& if_match) {
    v1::GetDeviceRequest get;
    get.set_device_id(id);
    v1::Device current;
    grpc::Status s = registry_->GetDevice(Context().get(), get, &current);
    if (!s.ok()) return Fail(s);
    v1::UpdateDeviceRequest req;
    v1::Device* d = req.mutable_device();
    d->set_device_id(id);
    d->set_status(enabled ? (*enabled ? v1::DEVICE_STATUS_ENABLED : v1::DEVICE_STATUS_DISABLED)
                          : current.status());
    d->set_status_reason(reason ? *reason : current.status_reason());
    d->mutable_authentication()->set_primary_key(primary);
    d->mutable_authentication()->set_secondary_key(secondary);
    req.set_if_match(if_match.empty() ? current.etag() : if_match);
    v1::Device resp;
    s = registry_->UpdateDevice(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintDevice(resp);
    return kExitOk;
  }

  int Delete(const std::string& id, const std::string& if_match) {
    v1::DeleteDeviceRequest req;
    req.set_device_id(id);
    req.set_if_match(if_match);
    v1::DeleteDeviceResponse resp;
    const grpc::Status s = registry_->DeleteDevice(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    v1::GetDeviceRequest deleted;
    deleted.set_device_id(id);
    return Done(deleted, "deleted " + id);
  }

  // Every device, all pages, one JSON object a line (keys included) to
  // `output` (mode 0600, replaced only once complete) or, for "-", to stdout.
  int Export(const std::string& output) {
    std::optional<SecretFile> file;
    if (output != "-") file.emplace(output);
    std::ostream& to = file ? file->stream() : out_;
    long count = 0;
    std::string page_token;
    do {
      v1::ListDevicesRequest req;
      req.set_page_size(1000);
      req.set_page_token(page_token);
      v1::ListDevicesResponse resp;
      const grpc::Status s = registry_->ListDevices(Context().get(), req, &resp);
      if (!s.ok()) return Fail(s);
      for (const v1::Device& d : resp.devices()) to << Json(d) << "\n";
      count += resp.devices_size();
      page_token = resp.next_page_token();
    } while (!page_token.empty());
    if (file) {
      file->Commit();
    } else {
      out_.flush();  // the devices before the count on stderr
    }
    err_ << "exported " << count << " devices" << (file ? " to " + output : std::string()) << "\n";
    return kExitOk;
  }

  // Creates a device from each JSON line of `input` ("-": stdin), keeping
  // its keys, status and status reason when present, one call at a time
  // (throttled calls are retried). Stops at the first call that does not
  // reach Ferry (exit 3: a device whose call timed out may exist; run again
  // with --skip-existing); otherwise goes on past failed lines and exits 1
  // if there were any.
  int Import(const std::string& input, bool skip_existing) {
    std::ifstream file;
    if (input != "-") {
      file.open(input);
      if (!file) {
        err_ << "ferryctl: cannot read '" << input << "'\n";
        return kExitUsage;
      }
    }
    std::istream& in = input == "-" ? std::cin : file;
    long created = 0, skipped = 0, number = 0;
    std::vector<std::pair<long, std::string>> failed;
    std::optional<grpc::Status> unreachable;
    std::string line;
    while (!unreachable && std::getline(in, line)) {
      ++number;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      v1::Device d;
      const auto parsed = google::protobuf::util::JsonStringToMessage(line, &d);
      if (!parsed.ok()) {
        failed.emplace_back(
            number, "not a device as JSON: " +
                        OneLine(std::string(parsed.message().data(), parsed.message().size())));
        continue;
      }
      if (d.device_id().empty()) {
        failed.emplace_back(number, "no device_id");
        continue;
      }
      v1::CreateDeviceRequest req;
      v1::Device* c = req.mutable_device();
      c->set_device_id(d.device_id());
      c->set_status(d.status());
      c->set_status_reason(d.status_reason());
      *c->mutable_authentication() = d.authentication();
      v1::Device resp;
      grpc::Status s = registry_->CreateDevice(Context().get(), req, &resp);
      // Over ferryd's --throttle-registry rate: the call did nothing; back
      // off and try again (about 9 s in all before the line counts as failed).
      auto pause = std::chrono::milliseconds(100);
      for (int attempt = 0; attempt < 8 && Throttled(s); ++attempt) {
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(2000));
        s = registry_->CreateDevice(Context().get(), req, &resp);
      }
      if (s.ok()) {
        ++created;
      } else if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS && skip_existing) {
        ++skipped;
      } else if (Unreachable(s)) {
        unreachable = s;
      } else {
        failed.emplace_back(number, OneLine(s.error_message()));
      }
    }
    for (const auto& [n, reason] : failed) err_ << "line " << n << ": " << reason << "\n";
    err_ << "created " << created << ", skipped " << skipped << ", failed " << failed.size();
    if (unreachable) err_ << "; stopped at line " << number;
    err_ << "\n";
    if (options_.json) {
      nlohmann::ordered_json summary = {
          {"created", created}, {"skipped", skipped}, {"failed", failed.size()}};
      summary["failed_lines"] = nlohmann::ordered_json::array();
      for (const auto& [n, reason] : failed)
        summary["failed_lines"].push_back({{"line", n}, {"reason", reason}});
      if (unreachable) summary["stopped_at_line"] = number;
      out_ << summary.dump() << "\n";
    }
    if (unreachable) return Fail(*unreachable);
    return failed.empty() ? kExitOk : kExitRefused;
  }

  int RegenerateDeviceKey(const std::string& id, const std::string& slot) {
    v1::RegenerateDeviceKeyRequest req;
    req.set_device_id(id);
    req.set_slot(SlotFromName(slot));
    v1::Device resp;
    const grpc::Status s = registry_->RegenerateDeviceKey(Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    PrintDevice(resp);
    return kExitOk;
  }

  // HostName=…;DeviceId=…;SharedAccessKey=… of a device, for the device or
  // its gateway.
  int DeviceConnectionString(const std::string& id, const std::string& slot) {
    v1::GetDeviceRequest req;
    req.set_device_id(id);
    v1::Device d;
    const grpc::Status s = registry_->GetDevice(Context().get(), req, &d);
    if (!s.ok()) return Fail(s);
    const std::string host = credentials_ ? credentials_->host_name : "localhost";
    const auth::ConnectionString cs{host, std::nullopt, id,
                                    slot == "secondary" ? d.authentication().secondary_key()
                                                        : d.authentication().primary_key()};
    out_ << (options_.json ? JsonStrings({{"device_id", id}, {"connection_string", cs.ToString()}})
                           : cs.ToString())
         << "\n";
    return kExitOk;
  }

 private:
  std::unique_ptr<v1::Registry::Stub> registry_ = v1::Registry::NewStub(channel_);
};

}  // namespace

void AddDeviceCommands(CLI::App& app, const Options& options, std::ostream& out, std::ostream& err,
                       int& code) {
  struct State {
    std::string id, primary, secondary, reason, if_match, page_token, slot = "primary", file = "-";
    std::optional<std::string> update_reason;
    bool disabled = false, one_page = false, enable = false, disable = false, skip_existing = false;
    int page_size = 0;
  };
  auto st = std::make_shared<State>();
  auto client = [&options, &out, &err] { return DeviceClient(options, out, err); };

  CLI::App* devices =
      app.add_subcommand("devices", "Device identity registry (needs RegistryRead/RegistryWrite)")
          ->footer("Example: ferryctl devices list");
  devices->require_subcommand(1);

  CLI::App* create = devices->add_subcommand("create", "Register a device")
                         ->footer(
                             "Example: ferryctl devices create thermostat-7 --disabled "
                             "--status-reason 'not installed yet'");
  create->add_option("device-id", st->id, "Device id (case-sensitive)")->required();
  create->add_option("--primary-key", st->primary, "Base64 key (generated when omitted)");
  create->add_option("--secondary-key", st->secondary, "Base64 key (generated when omitted)");
  create->add_flag("--disabled", st->disabled, "Create the device disabled");
  create->add_option("--status-reason", st->reason, "Why (at most 128 characters)");
  create->callback([st, client, &code] {
    code = client().Create(st->id, st->primary, st->secondary, st->disabled, st->reason);
  });

  CLI::App* get = devices->add_subcommand("get", "Show one device, keys included")
                      ->footer("Example: ferryctl devices get thermostat-7 --json");
  get->add_option("device-id", st->id, "Device id")->required();
  get->callback([st, client, &code] { code = client().Get(st->id); });

  CLI::App* list = devices->add_subcommand("list", "List devices in id order (all pages)")
                       ->footer("Example: ferryctl devices list --page-size 500");
  list->add_option("--page-size", st->page_size, "Devices per call, 1 to 1000 (default 100)");
  list->add_option("--page-token", st->page_token,
                   "Start after a previous page (implies --one-page)");
  list->add_flag("--one-page", st->one_page, "Print one page only, with the next page token");
  list->callback([st, client, &code] {
    code = client().List(st->page_size, st->page_token, st->one_page || !st->page_token.empty());
  });

  CLI::App* update = devices->add_subcommand("update", "Change status, reason or keys")
                         ->footer(
                             "Example: ferryctl devices update thermostat-7 --disable "
                             "--status-reason 'stolen'");
  update->add_option("device-id", st->id, "Device id")->required();
  auto* en = update->add_flag("--enable", st->enable, "Enable the device");
  update->add_flag("--disable", st->disable, "Disable the device")->excludes(en);
  update->add_option("--status-reason", st->update_reason, "Why");
  update->add_option("--primary-key", st->primary, "New base64 primary key");
  update->add_option("--secondary-key", st->secondary, "New base64 secondary key");
  update->add_option("--if-match", st->if_match, "Refuse unless the device's etag is this");
  update->callback([st, client, &code] {
    std::optional<bool> enabled;
    if (st->enable) enabled = true;
    if (st->disable) enabled = false;
    code = client().Update(st->id, enabled, st->update_reason, st->primary, st->secondary,
                           st->if_match);
  });

  CLI::App* del = devices->add_subcommand("delete", "Delete a device")
                      ->footer("Example: ferryctl devices delete thermostat-7");
  del->add_option("device-id", st->id, "Device id")->required();
  del->add_option("--if-match", st->if_match, "Refuse unless the device's etag is this");
  del->callback([st, client, &code] { code = client().Delete(st->id, st->if_match); });

  CLI::App* regen =
      devices->add_subcommand("regenerate-key", "Give a device a new random key")
          ->footer("Example: ferryctl devices regenerate-key thermostat-7 --slot secondary");
  regen->add_option("device-id", st->id, "Device id")->required();
  regen->add_option("--slot", st->slot, "primary or secondary")
      ->check(CLI::IsMember({"primary", "secondary"}))
      ->capture_default_str();
  regen->callback([st, client, &code] { code = client().RegenerateDeviceKey(st->id, st->slot); });

  CLI::App* devcs =
      devices->add_subcommand("connection-string", "Print a device's connection string")
          ->footer("Example: ferryctl devices connection-string thermostat-7");
  devcs->add_option("device-id", st->id, "Device id")->required();
  devcs->add_option("--slot", st->slot, "primary or secondary")
      ->check(CLI::IsMember({"primary", "secondary"}))
      ->capture_default_str();
  devcs->callback(
      [st, client, &code] { code = client().DeviceConnectionString(st->id, st->slot); });

  CLI::App* exp =
      devices
          ->add_subcommand(
              "export",
              "Write every device as one JSON object a line, KEYS INCLUDED (the output holds "
              "secrets: a file is created with mode 0600 and appears only once complete)")
          ->footer(
              "Devices are listed page by page: a device created or deleted during the export may "
              "or "
              "may not be in it.\n"
              "Example: ferryctl devices export --output devices.jsonl\n"
              "Example: ferryctl devices export | jq -r .device_id");
  exp->add_option("-o,--output", st->file, "File to write (\"-\": stdout)")->capture_default_str();
  exp->callback([st, client, &code] { code = client().Export(st->file); });

  CLI::App* imp =
      devices
          ->add_subcommand(
              "import",
              "Create devices from JSON lines (as `devices export` writes them), keeping their "
              "keys, status and status reason; generation id and etag are new")
          ->footer(
              "Prints \"created N, skipped M, failed K\" and each failed line's number and reason "
              "on "
              "stderr (and, with --json, the summary as JSON on stdout); exits 1 if any line "
              "failed, 3 "
              "if Ferry became unreachable (the import stops there; run it again with "
              "--skip-existing). "
              "Calls refused with ThrottlingException are retried with backoff.\n"
              "Example: ferryctl devices import devices.jsonl --skip-existing\n"
              "Example: ferryctl devices export -e old:50051 | ferryctl devices import -");
  imp->add_option("file", st->file, "JSON lines file (\"-\": stdin)")->required();
  imp->add_flag("--skip-existing", st->skip_existing,
                "Count a device that already exists as skipped, not failed");
  imp->callback([st, client, &code] { code = client().Import(st->file, st->skip_existing); });
}

}  // namespace ferry::ctl
