#include "core/liveness.h"

#include <fmt/format.h>

namespace ferry {

void Liveness::Add(std::string name, Probe stuck_for) {
  std::lock_guard lock(mutex_);
  probes_.emplace_back(std::move(name), std::move(stuck_for));
}

std::vector<std::string> Liveness::Stuck(Duration limit) const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [name, probe] : probes_) {
    const std::optional<Duration> d = probe();
    if (d && *d > limit) {
      out.push_back(fmt::format("{} ({} s)", name,
                                std::chrono::duration_cast<std::chrono::seconds>(*d).count()));
    }
  }
  return out;
}

}  // namespace ferry
