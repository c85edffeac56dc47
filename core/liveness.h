#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ferry {

// What "live" means for ferryd: none of the loops it depends on is stuck.
// Each source reports how long it has been stuck on one piece of work (a
// periodic worker's running tick, the oldest task waiting in an executor,
// the time since the D2C poll loop last went round), or nullopt when idle.
// ferryd checks them every few seconds and turns the gRPC health service
// "liveness" NOT_SERVING while any is stuck longer than the limit
// (`--liveness-stall-seconds`), so Kubernetes restarts a wedged pod instead
// of leaving it serving nothing. Thread-safe.
class Liveness final {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using Probe = std::function<std::optional<Duration>()>;

  void Add(std::string name, Probe stuck_for);
  // The sources stuck for longer than `limit`, as "name (N s)", in the
  // order they were added; empty when live.
  [[nodiscard]] std::vector<std::string> Stuck(Duration limit) const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, Probe>> probes_;
};

}  // namespace ferry
