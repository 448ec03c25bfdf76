#include "src/observability/metrics_registry.h"

#include "src/common/status.h"

#include <cmath>
#include <cstdio>

namespace rm {

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", value);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", value);
  return buf;
}

MetricFamily::MetricFamily(std::string name, std::string help, Type type,
                           std::vector<std::string> label_names, std::vector<double> buckets)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      bounds_(std::move(buckets)) {
  RM_CHECK(name_.rfind("raftmetrics_", 0) == 0, "metric names start with raftmetrics_: " + name_);
}

MetricFamily::Series& MetricFamily::Find(const LabelValues& labels) {
  RM_CHECK(labels.size() == label_names_.size(), "wrong label count for " + name_);
  auto it = series_.find(labels);
  if (it == series_.end()) {
    it = series_.emplace(labels, Series{}).first;
    if (type_ == Type::kHistogram) it->second.buckets.assign(bounds_.size(), 0);
  }
  return it->second;
}

void MetricFamily::Add(const LabelValues& labels, double delta) {
  std::lock_guard<std::mutex> lock(mu_);
  Find(labels).value += delta;
}

void MetricFamily::Set(const LabelValues& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  Find(labels).value = value;
}

void MetricFamily::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  series_.clear();
}

void MetricFamily::Observe(const LabelValues& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = Find(labels);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) {
      ++s.buckets[i];
      break;
    }
  }
  ++s.count;
  s.sum += value;
}

double MetricFamily::Value(const LabelValues& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second.value;
}

std::string MetricFamily::LabelText(const LabelValues& values, const std::string& extra) const {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    out += (out.empty() ? "" : ",") + label_names_[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? "" : "{" + out + "}";
}

void MetricFamily::Render(std::string& out) const {
  static const char* kTypeNames[] = {"counter", "gauge", "histogram"};
  out += "# HELP " + name_ + " " + help_ + "\n";
  out += "# TYPE " + name_ + " " + kTypeNames[static_cast<int>(type_)] + "\n";
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [labels, s] : series_) {
    if (type_ != Type::kHistogram) {
      out += name_ + LabelText(labels) + " " + FormatSampleValue(s.value) + "\n";
      continue;
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += s.buckets[i];
      out += name_ + "_bucket" + LabelText(labels, "le=\"" + FormatSampleValue(bounds_[i]) + "\"") + " " +
             std::to_string(cumulative) + "\n";
    }
    out += name_ + "_bucket" + LabelText(labels, "le=\"+Inf\"") + " " + std::to_string(s.count) + "\n";
    out += name_ + "_sum" + LabelText(labels) + " " + FormatSampleValue(s.sum) + "\n";
    out += name_ + "_count" + LabelText(labels) + " " + std::to_string(s.count) + "\n";
  }
}

MetricFamily& MetricsRegistry::Add(std::unique_ptr<MetricFamily> family) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) RM_CHECK(f->name() != family->name(), "duplicate metric " + f->name());
  families_.push_back(std::move(family));
  return *families_.back();
}

MetricFamily& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names) {
  return Add(std::make_unique<MetricFamily>(name, help, MetricFamily::Type::kCounter, std::move(label_names)));
}

MetricFamily& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names) {
  return Add(std::make_unique<MetricFamily>(name, help, MetricFamily::Type::kGauge, std::move(label_names)));
}

MetricFamily& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                            std::vector<std::string> label_names, std::vector<double> buckets) {
  return Add(std::make_unique<MetricFamily>(name, help, MetricFamily::Type::kHistogram, std::move(label_names),
                                            std::move(buckets)));
}

void MetricsRegistry::AddCollector(std::function<void()> collector) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::Render() {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    collectors = collectors_;
  }
  for (auto& c : collectors) c();
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) f->Render(out);
  return out;
}

std::vector<double> MetricsRegistry::LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

}  // namespace rm
