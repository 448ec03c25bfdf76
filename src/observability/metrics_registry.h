// A small Prometheus metrics registry: counter, gauge and histogram families
// with labels, rendered in the text exposition format (version 0.0.4) for
// GET /metrics. Every family name starts with "raftmetrics_".
//
// Families are created once at start (AddCounter ...) and updated from any
// thread. Gauges that mirror state owned elsewhere (storage bytes, worker up)
// are refreshed by collectors, run at the start of every scrape.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace rm {

using LabelValues = std::vector<std::string>;

class MetricFamily {
 public:
  enum class Type { kCounter, kGauge, kHistogram };
  MetricFamily(std::string name, std::string help, Type type, std::vector<std::string> label_names,
               std::vector<double> buckets = {});

  // Counter: adds `delta` (>= 0). Gauge: adds (may be negative).
  void Add(const LabelValues& labels, double delta = 1);
  // Gauge: sets the value.
  void Set(const LabelValues& labels, double value);
  // Gauge: forgets every series (before a collector sets the current ones).
  void Clear();
  // Histogram: records one observation.
  void Observe(const LabelValues& labels, double value);
  // Current value of a counter or gauge series (0 when absent); for tests.
  double Value(const LabelValues& labels) const;

  void Render(std::string& out) const;
  const std::string& name() const { return name_; }

 private:
  struct Series {
    double value = 0;                // counter / gauge
    std::vector<uint64_t> buckets;   // histogram: per bucket (not cumulative)
    uint64_t count = 0;
    double sum = 0;
  };
  Series& Find(const LabelValues& labels);  // requires mu_
  std::string LabelText(const LabelValues& values, const std::string& extra = "") const;

  const std::string name_;
  const std::string help_;
  const Type type_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<LabelValues, Series> series_;
};

class MetricsRegistry {
 public:
  MetricFamily& AddCounter(const std::string& name, const std::string& help,
                           std::vector<std::string> label_names = {});
  MetricFamily& AddGauge(const std::string& name, const std::string& help,
                         std::vector<std::string> label_names = {});
  MetricFamily& AddHistogram(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names, std::vector<double> buckets);
  void AddCollector(std::function<void()> collector);

  // Runs the collectors, then renders every family.
  std::string Render();

  // Latency buckets in seconds, 0.5 ms to 30 s.
  static std::vector<double> LatencyBuckets();

 private:
  MetricFamily& Add(std::unique_ptr<MetricFamily> family);
  std::mutex mu_;
  std::vector<std::unique_ptr<MetricFamily>> families_;
  std::vector<std::function<void()>> collectors_;
};

// Escapes a label value (backslash, double quote, newline).
std::string EscapeLabelValue(const std::string& value);
// A sample value as Prometheus reads it ("1", "0.25", "+Inf", "NaN").
std::string FormatSampleValue(double value);

}  // namespace rm
