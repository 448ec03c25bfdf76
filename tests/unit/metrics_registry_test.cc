// Tests of src/observability/metrics_registry: Prometheus text format.
#include "src/observability/metrics_registry.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace rm {
namespace {

TEST(MetricsRegistry, RendersCountersWithLabels) {
  MetricsRegistry r;
  auto& c = r.AddCounter("raftmetrics_http_requests_total", "HTTP requests", {"endpoint", "status"});
  c.Add({"/insert", "200"});
  c.Add({"/insert", "200"}, 2);
  c.Add({"/q\"x\\\n", "500"});
  std::string text = r.Render();
  EXPECT_NE(text.find("# HELP raftmetrics_http_requests_total HTTP requests\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE raftmetrics_http_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("raftmetrics_http_requests_total{endpoint=\"/insert\",status=\"200\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("endpoint=\"/q\\\"x\\\\\\n\""), std::string::npos) << text;
  EXPECT_EQ(c.Value({"/insert", "200"}), 3);
}

TEST(MetricsRegistry, RendersCumulativeHistograms) {
  MetricsRegistry r;
  auto& h = r.AddHistogram("raftmetrics_x_seconds", "X", {"endpoint"}, {0.1, 1});
  h.Observe({"/a"}, 0.05);
  h.Observe({"/a"}, 0.5);
  h.Observe({"/a"}, 5);
  std::string text = r.Render();
  EXPECT_NE(text.find("raftmetrics_x_seconds_bucket{endpoint=\"/a\",le=\"0.1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("raftmetrics_x_seconds_bucket{endpoint=\"/a\",le=\"1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("raftmetrics_x_seconds_bucket{endpoint=\"/a\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("raftmetrics_x_seconds_sum{endpoint=\"/a\"} 5.55\n"), std::string::npos) << text;
  EXPECT_NE(text.find("raftmetrics_x_seconds_count{endpoint=\"/a\"} 3\n"), std::string::npos);
}

TEST(MetricsRegistry, CollectorsRefreshGaugesAtScrape) {
  MetricsRegistry r;
  auto& g = r.AddGauge("raftmetrics_storage_bytes", "Bytes", {"shard"});
  int calls = 0;
  r.AddCollector([&] {
    ++calls;
    g.Clear();
    g.Set({std::to_string(calls)}, 1024.5);
  });
  r.Render();
  std::string text = r.Render();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(text.find("shard=\"1\""), std::string::npos) << text;  // cleared
  EXPECT_NE(text.find("raftmetrics_storage_bytes{shard=\"2\"} 1024.5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE raftmetrics_storage_bytes gauge"), std::string::npos);
}

TEST(MetricsRegistry, UnlabelledSeries) {
  MetricsRegistry r;
  r.AddCounter("raftmetrics_points_inserted_total", "Points").Add({}, 1e6);
  EXPECT_NE(r.Render().find("raftmetrics_points_inserted_total 1000000\n"), std::string::npos);
}

TEST(MetricsRegistry, ConcurrentUpdatesAreCounted) {
  MetricsRegistry r;
  auto& c = r.AddCounter("raftmetrics_c_total", "C", {"k"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.Add({"v"});
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Value({"v"}), 40000);
}

TEST(FormatSampleValue, PrometheusNumbers) {
  EXPECT_EQ(FormatSampleValue(3), "3");
  EXPECT_EQ(FormatSampleValue(0.25), "0.25");
  EXPECT_EQ(FormatSampleValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatSampleValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatSampleValue(0.0 / 0.0), "NaN");
}

}  // namespace
}  // namespace rm
