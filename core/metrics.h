#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/registry.h>

namespace prometheus {
class Exposer;
}

namespace ferry::metrics {

// Serves a registry's metrics at http://{listen}/metrics on its own port.
// Throws ferry::Error(kServiceUnavailable) with the address in the message
// when the address cannot be bound (taken, or not an address of this host).
class MetricsServer final {
 public:
  MetricsServer(const std::string& listen, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Serves `collectable` too, keeping it alive as long as the server.
  void Register(std::shared_ptr<prometheus::Collectable> collectable);

  // The bound port (useful with port 0).
  [[nodiscard]] int port() const { return port_; }

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  int port_ = 0;
};

// Adds process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds and
// process_start_time_seconds, read from /proc at every scrape.
[[nodiscard]] std::shared_ptr<prometheus::Collectable> MakeProcessCollector();

// ferry_build_info{version,commit} 1.
void AddBuildInfo(prometheus::Registry& registry, const std::string& version,
                  const std::string& commit);

}  // namespace ferry::metrics
