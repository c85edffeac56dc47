#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace prometheus {
class Exposer;
}

namespace ferry::metrics {

// The one way Ferry declares a metric: a component's constructor (or its
// `Metrics` struct's) calls these with the registry it was given, and keeps
// the returned reference. Each checks the name and help against Ferry's
// rules and throws std::invalid_argument on a breach, so a bad name fails
// the first test that builds the component, not a dashboard:
//   - the name is `ferry_` then [a-z0-9_], and a counter's ends in `_total`
//     (a gauge's or histogram's never does);
//   - the help is one or more words ending in a full stop.
// Registering the same name twice with the same help and type returns the
// same family (prometheus-cpp's rule), so two instances of one component in
// a process share its series.
//
// The *Family forms are for labelled metrics: keep the family, `Add` the
// labels where the value is known. The others return the one unlabelled
// series (or the one with `labels`).
[[nodiscard]] prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& registry,
                                                                     const std::string& name,
                                                                     const std::string& help);
[[nodiscard]] prometheus::Counter& Counter(prometheus::Registry& registry, const std::string& name,
                                           const std::string& help,
                                           const prometheus::Labels& labels = {});
[[nodiscard]] prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& registry,
                                                                 const std::string& name,
                                                                 const std::string& help);
[[nodiscard]] prometheus::Gauge& Gauge(prometheus::Registry& registry, const std::string& name,
                                       const std::string& help,
                                       const prometheus::Labels& labels = {});
[[nodiscard]] prometheus::Family<prometheus::Histogram>& HistogramFamily(
    prometheus::Registry& registry, const std::string& name, const std::string& help);
[[nodiscard]] prometheus::Histogram& Histogram(
    prometheus::Registry& registry, const std::string& name, const std::string& help,
    const prometheus::Histogram::BucketBoundaries& buckets);

// Why `name`/`help` breaks the rules above ("" when it does not).
[[nodiscard]] std::string CheckDeclaration(const std::string& name, const std::string& help,
                                           prometheus::MetricType type);

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
