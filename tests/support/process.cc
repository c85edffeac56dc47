#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include <sys/wait.h>

extern char** environ;

namespace ferry::testing {

std::string BinPath(const std::string& name) {
  return std::string(FERRY_BIN_DIR) + "/" + name;
}
std::string SourcePath(const std::string& relative) {
  return std::string(FERRY_SOURCE_DIR) + "/" + relative;
}

ChildProcess::ChildProcess(const std::string& path, const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The child starts with no blocked signals, whatever the test runner had.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> argv_storage{path};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv(*e);
    const auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  // An empty value unsets the variable.
  for (const auto& [k, v] : env) {
    if (v.empty()) {
      merged.erase(k);
    } else {
      merged[k] = v;
    }
  }
  std::vector<std::string> env_storage;
  for (const auto& [k, v] : merged) env_storage.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  const int rc = posix_spawn(&pid_, path.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    throw std::runtime_error("cannot start " + path + ": " + std::strerror(rc));
  }
  reader_ = std::thread([this, fd = pipefd[0]] { ReadLoop(fd); });
}

ChildProcess::~ChildProcess() {
  if (!Wait(std::chrono::milliseconds(0))) {
    kill(pid_, SIGKILL);
    (void)Wait(std::chrono::seconds(10));
  }
  if (reader_.joinable()) reader_.join();
}

void ChildProcess::ReadLoop(int fd) {
  std::string partial;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    partial.append(buf, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = partial.find('\n')) != std::string::npos) {
      std::lock_guard lock(mutex_);
      lines_.push_back(partial.substr(0, nl));
      partial.erase(0, nl + 1);
      changed_.notify_all();
    }
  }
  close(fd);
  std::lock_guard lock(mutex_);
  if (!partial.empty()) lines_.push_back(partial);
  eof_ = true;
  changed_.notify_all();
}

std::optional<std::string> ChildProcess::WaitForLine(const std::regex& pattern,
                                                     std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  std::size_t checked = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (; checked < lines_.size(); ++checked) {
      std::smatch m;
      if (std::regex_search(lines_[checked], m, pattern)) {
        return m.size() > 1 ? m[1].str() : m[0].str();
      }
    }
    if (eof_) return std::nullopt;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) return std::nullopt;
  }
}

void ChildProcess::Signal(int signal) {
  if (!status_) kill(pid_, signal);
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int raw = 0;
    const pid_t r = waitpid(pid_, &raw, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
      // What it wrote before exiting is read before Output() is asked (a
      // loaded machine once left its last line unread): the pipe ends once
      // no process holds it; bounded, as a grandchild may keep it open.
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, std::chrono::seconds(5), [this] { return eof_; });
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string ChildProcess::Output() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& l : lines_) out += l + "\n";
  return out;
}

RunResult Run(const std::string& path, const std::vector<std::string>& args,
              std::chrono::milliseconds timeout, const std::map<std::string, std::string>& env) {
  ChildProcess child(path, args, env);
  RunResult result;
  const auto status = child.Wait(timeout);
  if (!status) {
    child.Signal(SIGKILL);
    (void)child.Wait(std::chrono::seconds(10));
  }
  result.exit_code = status.value_or(-1);
  // The reader thread finishes at EOF; Output() after exit may still miss the
  // last bytes, so wait for EOF briefly.
  (void)child.WaitForLine(std::regex("(?!)"), std::chrono::milliseconds(2000));
  result.output = child.Output();
  return result;
}

}  // namespace ferry::testing
