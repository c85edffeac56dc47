#include "core/metrics.h"

#include <set>

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
