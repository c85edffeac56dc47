#include "tools/ferryctl/ferryctl.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace ferry {
namespace {

struct CtlResult {
  int code = -1;
  std::string out;
  std::string err;
};

// ferryctl in this process, against nothing: only commands that make no call.
CtlResult Ctl(std::vector<std::string> args) {
  args.insert(args.begin(), "ferryctl");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  const int code = ctl::Run(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

// Every command that runs something (a leaf of the tree), by full name.
std::vector<std::pair<std::string, CLI::App*>> Leaves(CLI::App& app) {
  std::vector<std::pair<std::string, CLI::App*>> leaves;
  std::function<void(CLI::App*, const std::string&)> walk = [&](CLI::App* cmd,
                                                                const std::string& name) {
    const auto subs = cmd->get_subcommands([](CLI::App*) { return true; });
    if (subs.empty()) leaves.emplace_back(name, cmd);
    for (CLI::App* sub : subs) walk(sub, name + " " + sub->get_name());
  };
  walk(&app, "ferryctl");
  return leaves;
}

TEST(Ferryctl, EveryCommandHasAnExampleInItsHelp) {
  ctl::Options options;
  std::ostringstream out, err;
  int code = 0;
  const auto app = ctl::MakeApp(options, out, err, code);
  const auto leaves = Leaves(*app);
  // devices (9), policies (6), token, routes (8), endpoints (3), events (2),
  // checkpoints (2), deadletters (2), enrichments (3), c2d (4), device (5),
  // feedback (4), audit (1), health.
  EXPECT_EQ(leaves.size(), 51u);
  // An example of this very command (CLI11 copies a parent's footer into a
  // subcommand that sets none: the parent's example would not name it).
  for (const auto& [name, cmd] : leaves) {
    const std::string example = "Example: " + name;
    EXPECT_NE((cmd->get_description() + "\n" + cmd->get_footer()).find(example), std::string::npos)
        << name << " has no \"" << example << "\" in its help";
    EXPECT_NE(cmd->help().find(example), std::string::npos) << name;
  }
}

TEST(Ferryctl, RootHelpListsTheExitCodes) {
  const auto help = Ctl({"--help"});
  EXPECT_EQ(help.code, ctl::kExitOk);
  for (const char* line : {"Exit codes:", "  0  done", "  1  Ferry refused", "  2  usage error",
                           "  3  Ferry unreachable", "  4  not found"}) {
    EXPECT_NE(help.out.find(line), std::string::npos) << line << "\n" << help.out;
  }
}

TEST(Ferryctl, UsageErrorsExit2) {
  EXPECT_EQ(Ctl({}).code, ctl::kExitUsage);
  EXPECT_EQ(Ctl({"devices", "frobnicate"}).code, ctl::kExitUsage);
  EXPECT_EQ(Ctl({"devices", "get"}).code, ctl::kExitUsage);  // no device id
  EXPECT_EQ(Ctl({"routes", "fallback", "maybe"}).code, ctl::kExitUsage);
  EXPECT_EQ(Ctl({"events", "read", "--from", "yesterday"}).code, ctl::kExitUsage);
  const auto missing = Ctl({"devices", "import", "/nonexistent/devices.jsonl"});
  EXPECT_EQ(missing.code, ctl::kExitUsage);
  EXPECT_EQ(missing.err, "ferryctl: cannot read '/nonexistent/devices.jsonl'\n");
  EXPECT_EQ(Ctl({"--connection-string", "", "token"}).code, ctl::kExitUsage);
}

TEST(Ferryctl, GlobalOptionsAlsoWorkAfterTheCommand) {
  const std::string cs = "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=" +
                         std::string("ZTJlLW93bmVyLWtleS1mb3ItZmVycnktdGVzdHMtMzI=");
  const auto before = Ctl({"--json", "--connection-string", cs, "token"});
  const auto after = Ctl({"token", "--json", "--connection-string", cs});
  ASSERT_EQ(before.code, ctl::kExitOk) << before.err;
  ASSERT_EQ(after.code, ctl::kExitOk) << after.err;
  EXPECT_EQ(before.out.rfind("{\"token\":\"SharedAccessSignature sr=localhost&sig=", 0), 0u)
      << before.out;
  EXPECT_EQ(after.out.rfind("{\"token\":\"SharedAccessSignature sr=localhost&sig=", 0), 0u)
      << after.out;
}

// Lines that are no device fail before any call: reported by line number,
// summed up, exit 1.
TEST(Ferryctl, ImportReportsLinesThatAreNoDevice) {
  char path[] = "/tmp/ferryctl_test.XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    std::ofstream f(path);
    f << "not "
         "json\n\n{\"status\":\"DEVICE_STATUS_ENABLED\"}\n{\"device_id\":\"a\",\"colour\":\"red\"}"
         "\n";
  }
  const auto r = Ctl({"--endpoint", "127.0.0.1:1", "--json", "devices", "import", path});
  ::unlink(path);
  EXPECT_EQ(r.code, ctl::kExitRefused);
  std::istringstream err(r.err);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(err, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u) << r.err;
  EXPECT_EQ(lines[0].rfind("line 1: not a device as JSON: ", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1], "line 3: no device_id");
  EXPECT_EQ(lines[2].rfind("line 4: not a device as JSON: ", 0), 0u) << lines[2];
  EXPECT_NE(lines[2].find("colour"), std::string::npos) << lines[2];
  EXPECT_EQ(lines[3], "created 0, skipped 0, failed 3");
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["created"], 0);
  EXPECT_EQ(summary["skipped"], 0);
  EXPECT_EQ(summary["failed"], 3);
  ASSERT_EQ(summary["failed_lines"].size(), 3u) << r.out;
  EXPECT_EQ(summary["failed_lines"][0]["line"], 1);
  EXPECT_EQ(summary["failed_lines"][1], nlohmann::json({{"line", 3}, {"reason", "no device_id"}}));
  EXPECT_EQ(summary["failed_lines"][2]["line"], 4);
}

}  // namespace
}  // namespace ferry
