#include "core/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <sys/resource.h>

#include "core/error.h"

namespace ferry::metrics {

std::string CheckDeclaration(const std::string& name, const std::string& help,
                             prometheus::MetricType type) {
  static const std::string kPrefix = "ferry_";
  if (name.rfind(kPrefix, 0) != 0 || name.size() == kPrefix.size()) {
    return "metric name " + name + " does not start with " + kPrefix;
  }
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return "metric name " + name + " has a character other than [a-z0-9_]";
    }
  }
  const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
  if (type == prometheus::MetricType::Counter && !total) {
    return "counter " + name + " does not end in _total";
  }
  if (type != prometheus::MetricType::Counter && total) {
    return "metric " + name + " ends in _total but is not a counter";
  }
  if (help.size() < 2 || help.back() != '.') {
    return "metric " + name + " has no help sentence ending in a full stop";
  }
  return "";
}

namespace {

void Check(const std::string& name, const std::string& help, prometheus::MetricType type) {
  if (auto why = CheckDeclaration(name, help, type); !why.empty()) {
    throw std::invalid_argument(why);
  }
}

}  // namespace

prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& registry,
                                                       const std::string& name,
                                                       const std::string& help) {
  Check(name, help, prometheus::MetricType::Counter);
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

prometheus::Counter& Counter(prometheus::Registry& registry, const std::string& name,
                             const std::string& help, const prometheus::Labels& labels) {
  return CounterFamily(registry, name, help).Add(labels);
}

prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& registry,
                                                   const std::string& name,
                                                   const std::string& help) {
  Check(name, help, prometheus::MetricType::Gauge);
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Gauge& Gauge(prometheus::Registry& registry, const std::string& name,
                         const std::string& help, const prometheus::Labels& labels) {
  return GaugeFamily(registry, name, help).Add(labels);
}

prometheus::Family<prometheus::Histogram>& HistogramFamily(prometheus::Registry& registry,
                                                           const std::string& name,
                                                           const std::string& help) {
  Check(name, help, prometheus::MetricType::Histogram);
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
}

prometheus::Histogram& Histogram(prometheus::Registry& registry, const std::string& name,
                                 const std::string& help,
                                 const prometheus::Histogram::BucketBoundaries& buckets) {
  return HistogramFamily(registry, name, help).Add({}, buckets);
}

MetricsServer::MetricsServer(const std::string& listen,
                             std::shared_ptr<prometheus::Registry> registry) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen, 2);
  } catch (const std::exception& e) {
    throw Error(Reason::kServiceUnavailable, "cannot serve metrics on " + listen +
                                                 " (address in use or not local?): " + e.what());
  }
  Register(std::move(registry));
  const auto ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? 0 : ports.front();
}

MetricsServer::~MetricsServer() = default;

void MetricsServer::Register(std::shared_ptr<prometheus::Collectable> collectable) {
  exposer_->RegisterCollectable(collectable);
  collectables_.push_back(std::move(collectable));
}

namespace {

prometheus::MetricFamily Single(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

class ProcessCollector final : public prometheus::Collectable {
 public:
  ProcessCollector()
      : ticks_(static_cast<double>(sysconf(_SC_CLK_TCK))),
        page_(static_cast<double>(sysconf(_SC_PAGESIZE))) {
    boot_time_ = ReadBootTime();
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    std::ifstream stat("/proc/self/stat");
    std::string line;
    std::getline(stat, line);
    // Fields after the parenthesised command name, which may hold spaces.
    const auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 2));
      std::vector<std::string> f;
      for (std::string s; rest >> s;) f.push_back(s);
      // f[0] is field 3 (state): utime=14, stime=15, starttime=22, vsize=23, rss=24.
      if (f.size() > 22) {
        const double utime = std::stod(f[11]);
        const double stime = std::stod(f[12]);
        const double start = std::stod(f[19]);
        out.push_back(Single("process_cpu_seconds_total",
                             "Total user and system CPU time spent in seconds.",
                             MetricType::Counter, (utime + stime) / ticks_));
        out.push_back(Single("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.",
                             MetricType::Gauge, boot_time_ + start / ticks_));
        out.push_back(Single("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                             MetricType::Gauge, std::stod(f[20])));
        out.push_back(Single("process_resident_memory_bytes", "Resident memory size in bytes.",
                             MetricType::Gauge, std::stod(f[21]) * page_));
      }
    }
    out.push_back(Single("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
                         CountOpenFds()));
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      out.push_back(Single("process_max_fds", "Maximum number of open file descriptors.",
                           MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
    }
    return out;
  }

 private:
  static double ReadBootTime() {
    std::ifstream in("/proc/stat");
    for (std::string key; in >> key;) {
      if (key == "btime") {
        double v = 0;
        in >> v;
        return v;
      }
    }
    return 0;
  }

  static double CountOpenFds() {
    DIR* dir = opendir("/proc/self/fd");
    if (dir == nullptr) return 0;
    double n = 0;
    while (const dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(dir);
    return n - 1;  // the descriptor opendir itself holds
  }

  double ticks_;
  double page_;
  double boot_time_ = 0;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeProcessCollector() {
  return std::make_shared<ProcessCollector>();
}

void AddBuildInfo(prometheus::Registry& registry, const std::string& version,
                  const std::string& commit) {
  metrics::Gauge(registry, "ferry_build_info", "Ferry build: version and git commit; always 1.",
                 {{"version", version}, {"commit", commit}})
      .Set(1);
}

}  // namespace ferry::metrics
