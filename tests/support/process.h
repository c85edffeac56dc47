#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace ferry::testing {

// A child process whose stdout and stderr are read line by line, for tests
// that drive ferryd or ferryctl as a user would. Killed (SIGKILL) on
// destruction if still running.
class ChildProcess final {
 public:
  // `env` adds to (an empty value removes from) this process's environment.
  ChildProcess(const std::string& path, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The first submatch of the first output line matching `pattern`, waiting
  // up to `timeout`; nullopt if none came (or the process exited first).
  std::optional<std::string> WaitForLine(const std::regex& pattern,
                                         std::chrono::milliseconds timeout);
  void Signal(int signal);
  // The exit status (exit code, or 128 + signal), or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  [[nodiscard]] std::string Output() const;
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  void ReadLoop(int fd);

  pid_t pid_ = -1;
  std::optional<int> status_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  bool eof_ = false;
  std::thread reader_;
};

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr interleaved
};

// Runs a command to completion (at most `timeout`, then killed).
RunResult Run(const std::string& path, const std::vector<std::string>& args,
              std::chrono::milliseconds timeout = std::chrono::seconds(60),
              const std::map<std::string, std::string>& env = {});

// Paths of the built binaries and source scripts.
[[nodiscard]] std::string BinPath(const std::string& name);
[[nodiscard]] std::string SourcePath(const std::string& relative);

}  // namespace ferry::testing
