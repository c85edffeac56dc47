// ferryctl end to end: the built binary against a ferryd on a test database,
// as an operator (or a script) runs it.
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "tests/support/ferryd.h"
#include "tests/support/pg.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"
#include "tools/ferryctl/ferryctl.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using Env = std::map<std::string, std::string>;

constexpr char kKeyA[] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
constexpr char kKeyB[] = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

testing::RunResult Ctl(const std::vector<std::string>& args, const Env& env) {
  return testing::Run(testing::BinPath("ferryctl"), args, 60s, env);
}

// A shell pipeline with ferryctl as `ctl`; stdout only.
testing::RunResult Pipeline(const std::string& script, const Env& env) {
  return testing::Run(
      "/bin/bash", {"-c", "set -o pipefail; ctl=" + testing::BinPath("ferryctl") + "; " + script},
      60s, env);
}

// Each line of `text` as JSON; a line that is no JSON object fails the test.
std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << "not a JSON object: " << line;
    lines.push_back(j);
  }
  return lines;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// A directory of its own under /tmp, removed with its files.
class TempDir final {
 public:
  TempDir() {
    std::string templ = "/tmp/ferryctl_e2etest.XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// What an export must carry over: everything the registry lets a caller set.
struct Restorable {
  std::string status, status_reason, primary_key, secondary_key;
  bool operator==(const Restorable&) const = default;
};

std::map<std::string, Restorable> Restorables(const std::vector<nlohmann::json>& devices) {
  std::map<std::string, Restorable> out;
  for (const auto& d : devices) {
    out[d["device_id"].get<std::string>()] = {
        d["status"].get<std::string>(), d["status_reason"].get<std::string>(),
        d["authentication"]["primary_key"].get<std::string>(),
        d["authentication"]["secondary_key"].get<std::string>()};
  }
  return out;
}

class FerryctlE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::WaitFor(
        [&] { return testing::HealthStatus(ferryd_.Channel(), "") == "SERVING"; }, 30s))
        << ferryd_.process().Output();
  }

  testing::TestDatabase db_;
  testing::FerrydProcess ferryd_{db_.url(), {"--migrate"}};
  Env env_ = ferryd_.CtlEnv();
};

TEST_F(FerryctlE2e, ExportDeleteImportRestoresTheSameDevicesAndKeys) {
  ASSERT_EQ(
      Ctl({"devices", "create", "thermostat-7", "--primary-key", kKeyA, "--secondary-key", kKeyB},
          env_)
          .exit_code,
      0);
  ASSERT_EQ(Ctl({"devices", "create", "door-1", "--disabled", "--status-reason", "stolen"}, env_)
                .exit_code,
            0);
  ASSERT_EQ(Ctl({"devices", "create", "pump.3_(east)"}, env_).exit_code, 0);

  const TempDir dir;
  const auto exported = Ctl({"devices", "export", "--output", dir.File("devices.jsonl")}, env_);
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_EQ(exported.output, "exported 3 devices to " + dir.File("devices.jsonl") + "\n");
  struct stat st {};
  ASSERT_EQ(::stat(dir.File("devices.jsonl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the export holds keys";
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.File("")), {}), 1)
      << "no temporary file is left behind";
  const auto before_lines = JsonLines(ReadAll(dir.File("devices.jsonl")));
  ASSERT_EQ(before_lines.size(), 3u);
  const auto before = Restorables(before_lines);
  EXPECT_EQ(before.at("thermostat-7"), (Restorable{"DEVICE_STATUS_ENABLED", "", kKeyA, kKeyB}));
  EXPECT_EQ(before.at("door-1").status, "DEVICE_STATUS_DISABLED");
  EXPECT_EQ(before.at("door-1").status_reason, "stolen");
  EXPECT_FALSE(before.at("pump.3_(east)").primary_key.empty());

  for (const auto& [id, _] : before) {
    const auto deleted = Ctl({"devices", "delete", id}, env_);
    ASSERT_EQ(deleted.exit_code, 0) << deleted.output;
  }
  EXPECT_EQ(Ctl({"--json", "devices", "list"}, env_).output, "");

  const auto imported = Ctl({"devices", "import", dir.File("devices.jsonl")}, env_);
  EXPECT_EQ(imported.exit_code, 0) << imported.output;
  EXPECT_EQ(imported.output, "created 3, skipped 0, failed 0\n");

  const auto again = Ctl({"devices", "export", "-o", dir.File("again.jsonl")}, env_);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  const auto after_lines = JsonLines(ReadAll(dir.File("again.jsonl")));
  EXPECT_EQ(Restorables(after_lines), before);
  for (std::size_t i = 0; i < after_lines.size(); ++i) {
    EXPECT_EQ(after_lines[i]["device_id"], before_lines[i]["device_id"]) << "id order";
    EXPECT_NE(after_lines[i]["generation_id"], before_lines[i]["generation_id"])
        << "a new identity";
  }
  // The restored keys sign tokens that ferryd accepts.
  const auto cs = Ctl({"devices", "connection-string", "thermostat-7"}, env_);
  ASSERT_EQ(cs.exit_code, 0);
  EXPECT_EQ(cs.output, "HostName=localhost;DeviceId=thermostat-7;SharedAccessKey=" +
                           std::string(kKeyA) + "\n");
  const Env device{{"FERRY_ENDPOINT", ferryd_.grpc_address()},
                   {"FERRY_CONNECTION_STRING", cs.output.substr(0, cs.output.size() - 1)}};
  const auto received = Ctl({"device", "receive", "thermostat-7"}, device);
  EXPECT_EQ(received.exit_code, 0) << received.output;
  EXPECT_EQ(received.output, "no message\n");

  // Importing again: every line fails, or with --skip-existing is skipped.
  const auto twice = Ctl({"devices", "import", dir.File("devices.jsonl")}, env_);
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_EQ(twice.output,
            "line 1: DeviceAlreadyExists: device \"door-1\" already exists\n"
            "line 2: DeviceAlreadyExists: device \"pump.3_(east)\" already exists\n"
            "line 3: DeviceAlreadyExists: device \"thermostat-7\" already exists\n"
            "created 0, skipped 0, failed 3\n");
  const auto skipped =
      Ctl({"devices", "import", "--skip-existing", dir.File("devices.jsonl")}, env_);
  EXPECT_EQ(skipped.exit_code, 0) << skipped.output;
  EXPECT_EQ(skipped.output, "created 0, skipped 3, failed 0\n");

  // A mixed file through a pipe: one new, one existing, one invalid id, one
  // line that is no JSON. Exit 1; the summary as JSON on stdout.
  {
    std::ofstream mixed(dir.File("mixed.jsonl"));
    mixed << "{\"device_id\":\"valve-9\",\"authentication\":{\"primary_key\":\"" << kKeyB
          << "\"}}\n"
          << before_lines[2].dump() << "\n"
          << "{\"device_id\":\"no spaces allowed\"}\n"
          << "{\"device_id\":\n";
  }
  const auto piped = Pipeline("$ctl --json devices import --skip-existing - <" +
                                  dir.File("mixed.jsonl") + " 2>" + dir.File("mixed.err"),
                              env_);
  EXPECT_EQ(piped.exit_code, 1) << piped.output;
  const auto summary = JsonLines(piped.output);
  ASSERT_EQ(summary.size(), 1u) << piped.output;
  EXPECT_EQ(summary[0]["created"], 1);
  EXPECT_EQ(summary[0]["skipped"], 1);
  EXPECT_EQ(summary[0]["failed"], 2);
  ASSERT_EQ(summary[0]["failed_lines"].size(), 2u);
  EXPECT_EQ(summary[0]["failed_lines"][0]["line"], 3);
  EXPECT_EQ(summary[0]["failed_lines"][1]["line"], 4);
  const std::string err = ReadAll(dir.File("mixed.err"));
  EXPECT_EQ(err.rfind("line 3: ArgumentInvalid: ", 0), 0u) << err;
  EXPECT_NE(err.find("\nline 4: not a device as JSON: "), std::string::npos) << err;
  EXPECT_EQ(err.substr(err.rfind('\n', err.size() - 2) + 1), "created 1, skipped 1, failed 2\n")
      << err;
  const auto valve = JsonLines(Ctl({"--json", "devices", "get", "valve-9"}, env_).output);
  ASSERT_EQ(valve.size(), 1u);
  EXPECT_EQ(valve[0]["authentication"]["primary_key"], kKeyB);
  EXPECT_EQ(valve[0]["status"], "DEVICE_STATUS_ENABLED");

  // Export to stdout, import from stdin: device to device through a pipe.
  const auto roundtrip =
      Pipeline("$ctl devices export 2>/dev/null | $ctl devices import --skip-existing -", env_);
  EXPECT_EQ(roundtrip.exit_code, 0) << roundtrip.output;
  EXPECT_EQ(roundtrip.output, "created 0, skipped 4, failed 0\n");
}

// More than one ListDevices page (1000) each way, through ferryd's registry
// throttle: throttled creates are retried, none fails.
// The throttle is forced, not hoped for: one registry call every 2 s, so
// the second line's call is throttled however slow the machine, and the
// import's backoff (about 9 s) outlasts it.
TEST(FerryctlE2eThrottled, ImportRetriesThrottledCalls) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate", "--throttle-registry", "0.5"});
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 30s));
  const TempDir dir;
  {
    std::ofstream f(dir.File("three.jsonl"));
    for (int i = 0; i < 3; ++i) f << "{\"device_id\":\"sim-" << i << "\"}\n";
  }
  const auto imported = Ctl({"devices", "import", dir.File("three.jsonl")}, ferryd.CtlEnv());
  EXPECT_EQ(imported.exit_code, 0) << imported.output;
  EXPECT_EQ(imported.output, "created 3, skipped 0, failed 0\n");
  const auto metrics = testing::Run(
      "/bin/bash",
      {"-c", "curl -sf http://127.0.0.1:" + std::to_string(ferryd.metrics_port()) + "/metrics"},
      30s);
  ASSERT_EQ(metrics.exit_code, 0) << metrics.output;
  const std::string name = "ferry_throttled_total{class=\"registry\"} ";
  const auto at = metrics.output.find(name);
  ASSERT_NE(at, std::string::npos) << metrics.output;
  EXPECT_GE(std::stod(metrics.output.substr(at + name.size())), 2) << metrics.output.substr(at, 80);
}

TEST(FerryctlE2eThrottled, ExportReadsEveryPage) {
  testing::TestDatabase db;
  testing::FerrydProcess ferryd(db.url(), {"--migrate"});
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::HealthStatus(ferryd.Channel(), "") == "SERVING"; }, 30s));
  const TempDir dir;
  {
    std::ofstream f(dir.File("many.jsonl"));
    for (int i = 0; i < 1005; ++i) f << "{\"device_id\":\"sim-" << 10000 + i << "\"}\n";
  }
  const auto imported = Ctl({"devices", "import", dir.File("many.jsonl")}, ferryd.CtlEnv());
  EXPECT_EQ(imported.exit_code, 0) << imported.output;
  EXPECT_EQ(imported.output, "created 1005, skipped 0, failed 0\n");
  const auto exported = Ctl({"devices", "export", "-o", dir.File("out.jsonl")}, ferryd.CtlEnv());
  EXPECT_EQ(exported.output, "exported 1005 devices to " + dir.File("out.jsonl") + "\n");
  const auto lines = JsonLines(ReadAll(dir.File("out.jsonl")));
  ASSERT_EQ(lines.size(), 1005u);
  EXPECT_EQ(lines.front()["device_id"], "sim-10000");
  EXPECT_EQ(lines.back()["device_id"], "sim-11004");
}

TEST_F(FerryctlE2e, ExitCodesMeanNotFoundRefusedUsageAndUnreachable) {
  ASSERT_EQ(Ctl({"devices", "create", "thermostat-7"}, env_).exit_code, 0);

  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {{"devices", "get", "ghost"}, ctl::kExitNotFound, "DeviceNotFound: "},
      {{"devices", "delete", "ghost"}, ctl::kExitNotFound, "DeviceNotFound: "},
      {{"devices", "regenerate-key", "ghost"}, ctl::kExitNotFound, "DeviceNotFound: "},
      {{"policies", "get", "ghost"}, ctl::kExitNotFound, "PolicyNotFound: "},
      {{"routes", "get", "ghost"}, ctl::kExitNotFound, "RouteNotFound: "},
      {{"endpoints", "delete", "ghost"}, ctl::kExitNotFound, "EndpointNotFound: "},
      {{"enrichments", "delete", "ghost"}, ctl::kExitNotFound, "EnrichmentNotFound: "},
      {{"c2d", "get", "thermostat-7", "--message-id", "ghost"},
       ctl::kExitNotFound,
       "MessageNotFound: "},
      {{"c2d", "send", "ghost", "--body", "x"}, ctl::kExitNotFound, "DeviceNotFound: "},
      {{"devices", "create", "thermostat-7"}, ctl::kExitRefused, "DeviceAlreadyExists: "},
      {{"devices", "create", "no spaces"}, ctl::kExitRefused, "ArgumentInvalid: "},
      {{"policies", "delete", "iothubowner"}, ctl::kExitRefused, ""},
      {{"devices", "get"}, ctl::kExitUsage, "device-id is required"},
      {{"devices", "lsit"}, ctl::kExitUsage, "A subcommand is required"},
      {{"c2d", "send", "thermostat-7", "--ack", "sometimes"}, ctl::kExitUsage, "sometimes"},
  };
  for (const auto& c : cases) {
    const auto r = Ctl(c.args, env_);
    std::string cmd;
    for (const auto& a : c.args) cmd += " " + a;
    EXPECT_EQ(r.exit_code, c.exit_code) << "ferryctl" << cmd << "\n" << r.output;
    EXPECT_NE(r.output.find(c.reason), std::string::npos) << "ferryctl" << cmd << "\n" << r.output;
  }
  // No token: refused, with a hint.
  const auto anonymous =
      Ctl({"--endpoint", ferryd_.grpc_address(), "devices", "get", "thermostat-7"},
          {{"FERRY_CONNECTION_STRING", ""}});
  EXPECT_EQ(anonymous.exit_code, ctl::kExitRefused);
  EXPECT_NE(anonymous.output.find("IotHubUnauthorizedAccess"), std::string::npos)
      << anonymous.output;

  // Unreachable: ferryd stopped, its port closed.
  ferryd_.process().Signal(SIGTERM);
  ASSERT_TRUE(ferryd_.process().Wait(20s).has_value());
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--timeout", "2", "devices", "get", "thermostat-7"},
           {"--timeout", "2", "health"},
           {"--timeout", "2", "devices", "export"},
       }) {
    const auto r = Ctl(args, env_);
    EXPECT_EQ(r.exit_code, ctl::kExitUnavailable) << args.back() << "\n" << r.output;
    EXPECT_NE(r.output.find("(is ferryd running and ready at " + ferryd_.grpc_address() + "?)"),
              std::string::npos)
        << r.output;
  }
  const TempDir dir;
  {
    std::ofstream f(dir.File("two.jsonl"));
    f << "{\"device_id\":\"a\"}\n{\"device_id\":\"b\"}\n";
  }
  const auto import = Ctl({"--timeout", "2", "devices", "import", dir.File("two.jsonl")}, env_);
  EXPECT_EQ(import.exit_code, ctl::kExitUnavailable) << import.output;
  EXPECT_EQ(import.output.rfind("created 0, skipped 0, failed 0; stopped at line 1\nferryctl: ", 0),
            0u)
      << import.output;
  const auto export_file =
      Ctl({"--timeout", "2", "devices", "export", "-o", dir.File("out.jsonl")}, env_);
  EXPECT_EQ(export_file.exit_code, ctl::kExitUnavailable);
  EXPECT_FALSE(std::filesystem::exists(dir.File("out.jsonl"))) << "a failed export leaves no file";
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.File("")), {}), 1)
      << "nor a temporary one";
}

// Every command that prints data prints one JSON object per line with --json.
TEST_F(FerryctlE2e, JsonOutputIsOneObjectPerLine) {
  ASSERT_EQ(Ctl({"devices", "create", "thermostat-7"}, env_).exit_code, 0);
  ASSERT_EQ(Ctl({"endpoints", "create", "alerts", "--kafka-topic", "ferry.alerts"}, env_).exit_code,
            0);
  ASSERT_EQ(
      Ctl({"routes", "create", "hot", "--endpoint", "alerts", "--condition", "$body.temp > 30"},
          env_)
          .exit_code,
      0);
  ASSERT_EQ(Ctl({"enrichments", "set", "site", "plant-7", "--endpoints", "alerts"}, env_).exit_code,
            0);
  // The embedded Kafka's 8 partitions, each claimed by this ferryd.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return JsonLines(Ctl({"--json", "checkpoints", "list"}, env_).output).size() == 8;
      },
      60s, 100ms));

  struct Case {
    std::vector<std::string> args;
    std::size_t lines;
    std::string field;  // a field every line has
  };
  const std::vector<Case> cases = {
      {{"devices", "create", "door-1"}, 1, "etag"},
      {{"devices", "get", "thermostat-7"}, 1, "generation_id"},
      {{"devices", "list"}, 2, "device_id"},
      {{"devices", "update", "door-1", "--disable"}, 1, "status"},
      {{"devices", "regenerate-key", "door-1"}, 1, "authentication"},
      {{"devices", "connection-string", "door-1"}, 1, "connection_string"},
      {{"devices", "export"}, 2, "authentication"},
      {{"devices", "delete", "door-1"}, 1, "device_id"},
      {{"policies", "list"}, 1, "permissions"},
      {{"policies", "get", "iothubowner"}, 1, "primary_key"},
      {{"policies", "create", "backend", "--permissions", "ServiceConnect"}, 1, "primary_key"},
      {{"policies", "update", "backend", "--permissions", "ServiceConnect,RegistryRead"},
       1,
       "permissions"},
      {{"policies", "regenerate-key", "backend"}, 1, "secondary_key"},
      {{"policies", "delete", "backend"}, 1, "name"},
      {{"token"}, 1, "token"},
      {{"endpoints", "list"}, 2, "kind"},
      {{"routes", "list"}, 1, "condition"},
      {{"routes", "get", "hot"}, 1, "endpoint"},
      {{"routes", "settings"}, 1, "fallback_enabled"},
      {{"routes", "fallback", "on"}, 1, "version"},
      {{"routes", "test", "--route", "hot", "--body", "{\"temp\":31}", "--content-type",
        "application/json"},
       1,
       "result"},
      {{"routes", "test", "--body", "{\"temp\":3}", "--content-type", "application/json"},
       1,
       "fallback_applies"},
      {{"enrichments", "list"}, 1, "endpoints"},
      {{"checkpoints", "list"}, 8, "partition"},
      {{"deadletters", "list"}, 0, ""},
      {{"c2d", "send", "thermostat-7", "--body", "{\"target\":21}", "--message-id", "set-21"},
       1,
       "sequence_number"},
      {{"c2d", "queue", "thermostat-7"}, 1, "state"},
      {{"c2d", "get", "thermostat-7", "--message-id", "set-21"}, 1, "delivery_count"},
      {{"device", "receive", "thermostat-7"}, 1, "lock_token"},
      {{"c2d", "purge", "thermostat-7"}, 1, "total_messages_purged"},
      {{"device", "send", "thermostat-7", "--body", "{\"temp\":31}", "--message-id", "hot-1"},
       1,
       "offset"},
      {{"feedback", "receive"}, 0, ""},
      {{"audit", "list", "--action", "device.delete"}, 1, "actor"},
      {{"health"}, 1, "readiness"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"--json"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = Ctl(args, env_);
    std::string cmd;
    for (const auto& a : c.args) cmd += " " + a;
    ASSERT_EQ(r.exit_code, 0) << "ferryctl --json" << cmd << "\n" << r.output;
    // devices export reports its count on stderr (interleaved here).
    const bool export_ = c.args.size() > 1 && c.args[1] == "export";
    const std::string out = export_ ? r.output.substr(0, r.output.find("exported ")) : r.output;
    const auto lines = JsonLines(out);
    EXPECT_EQ(lines.size(), c.lines) << "ferryctl --json" << cmd << "\n" << r.output;
    for (const auto& j : lines)
      EXPECT_TRUE(j.contains(c.field)) << "ferryctl --json" << cmd << "\n" << r.output;
  }
  // The stored event, read back.
  std::vector<nlohmann::json> events;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        events =
            JsonLines(Ctl({"--json", "events", "read", "--device", "thermostat-7"}, env_).output);
        return !events.empty();
      },
      20s, 100ms));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["message_id"], "hot-1");
  // The deletion above is in the audit log, by the owner.
  const auto audit =
      JsonLines(Ctl({"--json", "audit", "list", "--action", "device.delete"}, env_).output);
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0]["actor"], "iothubowner");
  EXPECT_EQ(audit[0]["target"], "door-1");
}

// `--help` of every command, from the built binary, has an example.
TEST(FerryctlHelp, EveryCommandsHelpHasAnExample) {
  ctl::Options options;
  std::ostringstream out, err;
  int code = 0;
  const auto app = ctl::MakeApp(options, out, err, code);
  std::vector<std::vector<std::string>> leaves;
  std::function<void(CLI::App*, std::vector<std::string>)> walk =
      [&](CLI::App* cmd, std::vector<std::string> path) {
        const auto subs = cmd->get_subcommands([](CLI::App*) { return true; });
        if (subs.empty()) leaves.push_back(path);
        for (CLI::App* sub : subs) {
          auto next = path;
          next.push_back(sub->get_name());
          walk(sub, next);
        }
      };
  walk(app.get(), {});
  ASSERT_EQ(leaves.size(), 51u);
  for (auto args : leaves) {
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    args.push_back("--help");
    const auto r = Ctl(args, {});
    EXPECT_EQ(r.exit_code, 0) << "ferryctl" << cmd << " --help";
    EXPECT_NE(r.output.find("Example: ferryctl" + cmd), std::string::npos)
        << "ferryctl" << cmd << " --help\n"
        << r.output;
  }
  const auto root = Ctl({"--help"}, {});
  EXPECT_EQ(root.exit_code, 0);
  EXPECT_NE(root.output.find("Exit codes:"), std::string::npos) << root.output;
  const auto exp = Ctl({"devices", "export", "--help"}, {});
  EXPECT_NE(exp.output.find("KEYS INCLUDED"), std::string::npos) << exp.output;
}

}  // namespace
}  // namespace ferry
