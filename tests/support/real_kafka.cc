#include "tests/support/real_kafka.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace ferry::testing {
namespace {

std::string Version() {
  const char* v = std::getenv("FERRY_TEST_KAFKA_VERSION");
  return v != nullptr && *v != '\0' ? v : "4.1.1";
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The last line of `output` that is a number (the verbs print node ids on
// stdout, progress on stderr).
int LastNumber(const std::string& output, const std::string& what) {
  std::istringstream in(output);
  std::string line;
  std::optional<int> found;
  while (std::getline(in, line)) {
    if (std::regex_match(line, std::regex("-?\\d+"))) found = std::stoi(line);
  }
  if (!found) throw std::runtime_error("scripts/kafka " + what + " printed no node id: " + output);
  return *found;
}

}  // namespace

RealKafka::RealKafka(int nodes, const std::vector<std::string>& topics) : topics_(topics) {
  char tmpl[] = "/tmp/ferry-realkafka.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  std::vector<std::string> args = {"--nodes", std::to_string(nodes), "--version", Version()};
  for (const auto& t : topics) {
    args.push_back("--topic");
    args.push_back(t);
  }
  try {
    Do("start", args);
  } catch (...) {
    Run(SourcePath("scripts/kafka"), {"stop", dir_}, std::chrono::seconds(60));
    throw;
  }
  std::ifstream in(dir_ + "/bootstrap");
  std::getline(in, bootstrap_);
  if (bootstrap_.empty())
    throw std::runtime_error("scripts/kafka start wrote no bootstrap in " + dir_);
}

RealKafka::~RealKafka() {
  Run(SourcePath("scripts/kafka"), {"stop", dir_}, std::chrono::seconds(90));
  // A failed test keeps the nodes' logs for a look afterwards.
  if (std::getenv("FERRY_TEST_KEEP_KAFKA") != nullptr || failed_ || ::testing::Test::HasFailure()) {
    std::cerr << "kafka logs kept in " << dir_ << "\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string RealKafka::Do(const std::string& verb, const std::vector<std::string>& args,
                          std::chrono::seconds timeout) {
  std::vector<std::string> full = {verb, dir_};
  full.insert(full.end(), args.begin(), args.end());
  const RunResult r = Run(SourcePath("scripts/kafka"), full, timeout);
  if (r.exit_code != 0) {
    failed_ = true;
    std::string cmd = "scripts/kafka";
    for (const auto& a : full) cmd += " " + a;
    throw std::runtime_error(cmd + " failed (exit " + std::to_string(r.exit_code) + "):\n" +
                             r.output + "\n" + Logs());
  }
  return Trim(r.output);
}

int RealKafka::Leader(const std::string& topic, int partition) {
  return LastNumber(Do("leader", {topic, std::to_string(partition)}), "leader");
}

int RealKafka::KillLeader(const std::string& topic, int partition) {
  return LastNumber(Do("kill-leader", {topic, std::to_string(partition)}), "kill-leader");
}

int RealKafka::KillCoordinator(const std::string& group) {
  return LastNumber(Do("kill-coordinator", {group}), "kill-coordinator");
}

void RealKafka::RestartAll() {
  Do("stop");
  Do("start");
}

std::string RealKafka::Logs() const {
  std::string out;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    const std::string name = entry.path().filename();
    if (name.rfind("node-", 0) != 0 || entry.path().extension() != ".log") continue;
    const RunResult tail =
        Run("/usr/bin/tail", {"-n", "15", entry.path()}, std::chrono::seconds(5));
    out += "--- " + name + " (last lines)\n" + tail.output;
  }
  return out;
}

}  // namespace ferry::testing
