#include "core/metrics.h"

#include <map>
#include <set>
#include <stdexcept>

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "core/error.h"

namespace ferry::metrics {
namespace {

TEST(ProcessMetrics, ReportsTheUsualProcessFamilies) {
  const auto families = MakeProcessCollector()->Collect();
  std::set<std::string> names;
  for (const auto& f : families) {
    names.insert(f.name);
    ASSERT_EQ(f.metric.size(), 1u) << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
  }
  for (const char* want : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds"}) {
    EXPECT_TRUE(names.count(want)) << want;
  }
  for (const auto& f : families) {
    if (f.name == "process_resident_memory_bytes") {
      EXPECT_GT(f.metric[0].gauge.value, 1e6);
    } else if (f.name == "process_open_fds") {
      EXPECT_GE(f.metric[0].gauge.value, 3);
    } else if (f.name == "process_start_time_seconds") {
      EXPECT_GT(f.metric[0].gauge.value, 1.7e9);
    }
  }
}

TEST(MetricDeclaration, NamesAndHelpFollowOneRule) {
  using prometheus::MetricType;
  EXPECT_EQ(CheckDeclaration("ferry_x_total", "Things.", MetricType::Counter), "");
  EXPECT_EQ(CheckDeclaration("ferry_x_seconds", "Time.", MetricType::Histogram), "");
  EXPECT_EQ(CheckDeclaration("ferry_x2", "Level.", MetricType::Gauge), "");
  EXPECT_NE(CheckDeclaration("x_total", "Things.", MetricType::Counter), "");
  EXPECT_NE(CheckDeclaration("ferry_", "Things.", MetricType::Gauge), "");
  EXPECT_NE(CheckDeclaration("ferry_X_total", "Things.", MetricType::Counter), "");
  EXPECT_NE(CheckDeclaration("ferry_x-y_total", "Things.", MetricType::Counter), "");
  EXPECT_NE(CheckDeclaration("ferry_x", "Things.", MetricType::Counter), "");
  EXPECT_NE(CheckDeclaration("ferry_x_total", "Level.", MetricType::Gauge), "");
  EXPECT_NE(CheckDeclaration("ferry_x_total", "", MetricType::Counter), "");
  EXPECT_NE(CheckDeclaration("ferry_x_total", "No full stop", MetricType::Counter), "");
}

TEST(MetricDeclaration, TheHelpersRegisterAndRefuseABreach) {
  prometheus::Registry registry;
  Counter(registry, "ferry_test_things_total", "Things.").Increment();
  Counter(registry, "ferry_test_things_total", "Things.").Increment();  // the same series
  Gauge(registry, "ferry_test_level", "Level.", {{"kind", "a"}}).Set(3);
  Histogram(registry, "ferry_test_seconds", "Time.", {0.1, 1}).Observe(0.5);
  CounterFamily(registry, "ferry_test_by_total", "By label.").Add({{"k", "v"}}).Increment(2);
  std::map<std::string, prometheus::ClientMetric> first;
  for (const auto& f : registry.Collect()) first[f.name] = f.metric.at(0);
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(first["ferry_test_things_total"].counter.value, 2);
  EXPECT_EQ(first["ferry_test_level"].gauge.value, 3);
  EXPECT_EQ(first["ferry_test_seconds"].histogram.sample_count, 1u);
  EXPECT_EQ(first["ferry_test_by_total"].counter.value, 2);
  EXPECT_THROW((void)Counter(registry, "ferry_test_things", "Things."), std::invalid_argument);
  EXPECT_THROW((void)Gauge(registry, "ferry_test_level_total", "Level."), std::invalid_argument);
  EXPECT_THROW((void)GaugeFamily(registry, "test_level", "Level."), std::invalid_argument);
  EXPECT_THROW((void)HistogramFamily(registry, "ferry_test_h", "no stop"), std::invalid_argument);
  EXPECT_EQ(registry.Collect().size(), 4u);  // nothing half-registered
}

TEST(MetricsServer, PortZeroBindsAFreePortAndATakenPortFailsLoudly) {
  auto registry = std::make_shared<prometheus::Registry>();
  MetricsServer first("127.0.0.1:0", registry);
  ASSERT_GT(first.port(), 0);
  try {
    MetricsServer second("127.0.0.1:" + std::to_string(first.port()), registry);
    FAIL() << "a second server bound the same port";
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), Reason::kServiceUnavailable);
    EXPECT_NE(std::string(e.what()).find(std::to_string(first.port())), std::string::npos);
  }
}

}  // namespace
}  // namespace ferry::metrics
