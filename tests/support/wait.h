#pragma once

#include <chrono>
#include <thread>

namespace ferry::testing {

// Polls `condition` until it holds or `timeout` passes; returns whether it
// held. Tests wait on conditions with deadlines, never with fixed sleeps.
template <typename Condition>
[[nodiscard]] bool WaitFor(Condition condition, std::chrono::milliseconds timeout,
                           std::chrono::milliseconds poll = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace ferry::testing
