#include "ferryd/crash.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <cstring>

namespace ferry {
namespace {

constexpr std::array kFatalSignals = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

void Write(const char* text) {
  // Best effort: nothing to do if stderr is gone.
  [[maybe_unused]] const auto n = ::write(STDERR_FILENO, text, std::strlen(text));
}

void OnFatalSignal(int signal_number) {
  // Only async-signal-safe calls: write(2), backtrace_symbols_fd (backtrace
  // was called once at install so that libgcc is loaded already).
  Write("ferryd: fatal signal ");
  Write(sigdescr_np(signal_number) != nullptr ? sigdescr_np(signal_number) : "?");
  Write("; stack of the crashing thread:\n");
  std::array<void*, 64> frames{};
  const int n = backtrace(frames.data(), static_cast<int>(frames.size()));
  backtrace_symbols_fd(frames.data(), n, STDERR_FILENO);
  // SA_RESETHAND restored the default action: raise it again.
  raise(signal_number);
}

}  // namespace

void InstallCrashHandler() {
  std::array<void*, 1> warm{};
  backtrace(warm.data(), 1);
  static std::array<char, 64 * 1024> alternate_stack{};
  stack_t ss{};
  ss.ss_sp = alternate_stack.data();
  ss.ss_size = alternate_stack.size();
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_handler = OnFatalSignal;
  sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (const int s : kFatalSignals) sigaction(s, &sa, nullptr);
}

}  // namespace ferry
