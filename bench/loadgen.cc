// rm_loadgen: sends the benchmark dataset (bench/dataset.h) to a RaftMetrics
// control node's POST /metrics, or to VictoriaMetrics' Influx /write, in
// batches over several parallel keep-alive connections, and reports points/s.
//
//   rm_loadgen --url 127.0.0.1:8080 --format protobuf            # RaftMetrics, columnar protobuf
//   rm_loadgen --url 127.0.0.1:8080 --format json                # {"points":[...]} JSON
//   rm_loadgen --url 127.0.0.1:8428 --format influx --batch 5000 # VictoriaMetrics /write
//   rm_loadgen --format influx --output data.lp                  # line protocol to a file
//   rm_loadgen --expect-only                                     # exact count/sum/average
//
// Every request body is encoded before the clock starts, so the generator is not
// what is measured. The last line is machine-readable:
//   RESULT format=... points=... seconds=... points_per_s=... errors=... inserted=...
#include "bench/dataset.h"
#include "proto/raftmetrics.pb.h"
#include "src/common/time_util.h"
#include "src/net/http_client.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using rmbench::Dataset;
using Clock = std::chrono::steady_clock;

struct Body {
  std::string data;
  uint64_t points = 0;
};

// One InsertRequest per batch: each host of the batch is one SeriesPoints
// (metric and tags once, then the timestamps_us and values arrays).
std::string EncodeProtobuf(const Dataset& d, uint64_t lo, uint64_t hi) {
  raftmetrics::v1::InsertRequest req;
  std::vector<int> index(d.hosts, -1);
  for (uint64_t i = lo; i < hi; ++i) {
    const uint32_t h = d.Host(i);
    if (index[h] < 0) {
      index[h] = req.series_size();
      auto* s = req.add_series();
      s->set_metric(d.metric);
      (*s->mutable_tags())["host"] = Dataset::HostName(h);
      (*s->mutable_tags())["datacenter"] = Dataset::Datacenter(h);
      const uint64_t per = (hi - lo) / d.hosts + 1;
      s->mutable_timestamps_us()->Reserve(static_cast<int>(per));
      s->mutable_values()->Reserve(static_cast<int>(per));
    }
    auto* s = req.mutable_series(index[h]);
    s->add_timestamps_us(d.TimestampMs(i) * 1000);
    s->add_values(d.Value(i));
  }
  return req.SerializeAsString();
}

// One seed-001 point object.
void AppendJsonPoint(std::string& out, const Dataset& d, uint64_t i) {
  const uint32_t h = d.Host(i);
  out += "{\"key\":\"";
  out += d.metric;
  out += "\",\"value\":";
  rmbench::AppendCents(out, d.Cents(i));
  out += ",\"timestamp\":\"";
  out += rm::FormatIso8601(d.TimestampMs(i) * 1000);
  out += "\",\"tags\":{\"host\":\"";
  out += Dataset::HostName(h);
  out += "\",\"datacenter\":\"";
  out += Dataset::Datacenter(h);
  out += "\"}}";
}

std::string EncodeJson(const Dataset& d, uint64_t lo, uint64_t hi) {
  std::string out;
  out.reserve((hi - lo) * 130 + 16);
  out += "{\"points\":[";
  for (uint64_t i = lo; i < hi; ++i) {
    if (i != lo) out += ',';
    AppendJsonPoint(out, d, i);
  }
  out += "]}";
  return out;
}

std::string EncodeNdjson(const Dataset& d, uint64_t lo, uint64_t hi) {
  std::string out;
  out.reserve((hi - lo) * 130);
  for (uint64_t i = lo; i < hi; ++i) {
    AppendJsonPoint(out, d, i);
    out += '\n';
  }
  return out;
}

// Influx line protocol, millisecond timestamps (post to /write?precision=ms):
//   cpu_usage,datacenter=us-west,host=web-1 value=12.34 1703980808640
std::string EncodeInflux(const Dataset& d, uint64_t lo, uint64_t hi) {
  std::string out;
  out.reserve((hi - lo) * 72);
  for (uint64_t i = lo; i < hi; ++i) {
    const uint32_t h = d.Host(i);
    out += d.metric;
    out += ",datacenter=";
    out += Dataset::Datacenter(h);
    out += ",host=";
    out += Dataset::HostName(h);
    out += " value=";
    rmbench::AppendCents(out, d.Cents(i));
    out += ' ';
    out += std::to_string(d.TimestampMs(i));
    out += '\n';
  }
  return out;
}

std::vector<Body> EncodeAll(const Dataset& d, const std::string& format, uint64_t batch) {
  const uint64_t n = (d.points + batch - 1) / batch;
  std::vector<Body> bodies(n);
  const unsigned threads = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), 8));
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (uint64_t b; (b = next.fetch_add(1)) < n;) {
        const uint64_t lo = b * batch, hi = std::min(d.points, lo + batch);
        Body& body = bodies[b];
        body.points = hi - lo;
        if (format == "protobuf") {
          body.data = EncodeProtobuf(d, lo, hi);
        } else if (format == "json") {
          body.data = EncodeJson(d, lo, hi);
        } else if (format == "ndjson") {
          body.data = EncodeNdjson(d, lo, hi);
        } else {
          body.data = EncodeInflux(d, lo, hi);
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  return bodies;
}

// Reads `"inserted":N` from a RaftMetrics JSON reply (0 when absent).
uint64_t InsertedFrom(const std::string& body) {
  size_t p = body.find("\"inserted\":");
  if (p == std::string::npos) return 0;
  return std::strtoull(body.c_str() + p + 11, nullptr, 10);
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  Dataset d;
  std::string url = "127.0.0.1:8080";
  std::string format = "protobuf";
  std::string path;
  std::string output;
  uint64_t batch = 50'000;
  int connections = 4;
  int timeout_ms = 300'000;
  std::string token;
  bool expect_only = false;
  bool quiet = false;

  CLI::App app{"RaftMetrics load generator (benchmark dataset -> /metrics or Influx /write)"};
  app.add_option("--url", url, "host:port of the target (RaftMetrics control node or VictoriaMetrics)");
  app.add_option("--points", d.points, "Number of points")->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  app.add_option("--hosts", d.hosts, "Number of hosts (series)")->check(CLI::Range(1u, 10'000'000u));
  app.add_option("--metric", d.metric, "Metric name");
  app.add_option("--end-ms", d.end_ms, "End of the time span (ms since epoch; default 2024-01-01T00:00:00Z)");
  app.add_option("--span-ms", d.span_ms, "Length of the time span (ms; default 24 h)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  app.add_option("--batch", batch, "Points per request")->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
  app.add_option("--connections", connections, "Parallel connections")->check(CLI::Range(1, 1024));
  app.add_option("--format", format, "protobuf | json | ndjson | influx")
      ->check(CLI::IsMember({"protobuf", "json", "ndjson", "influx"}));
  app.add_option("--path", path, "Request path (default /metrics; /write?precision=ms for influx)");
  app.add_option("--output", output, "Write the encoded bodies to this file instead of sending (influx, ndjson)");
  app.add_option("--timeout-ms", timeout_ms, "Per-request timeout");
  app.add_option("--token", token, "Bearer token sent with every request (RaftMetrics)");
  app.add_flag("--expect-only", expect_only, "Only print the dataset's exact count, sum and average");
  app.add_flag("--quiet", quiet, "Only print the RESULT line");
  CLI11_PARSE(app, argc, argv);

  if (url.rfind("http://", 0) == 0) url = url.substr(7);
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (path.empty()) path = format == "influx" ? "/write?precision=ms" : "/metrics";

  {
    auto t = d.Expected();
    std::printf("EXPECT count=%llu sum=%.2f average=%.12g\n", static_cast<unsigned long long>(t.count),
                static_cast<double>(t.cents) / 100.0, t.Average());
    if (expect_only) return 0;
  }

  auto t0 = Clock::now();
  std::vector<Body> bodies = EncodeAll(d, format, batch);
  uint64_t bytes = 0;
  for (const auto& b : bodies) bytes += b.data.size();
  const double encode_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!quiet) {
    std::printf("dataset: %llu points, %u hosts, %llu ticks every %lld ms ending %s; metric %s\n",
                static_cast<unsigned long long>(d.points), d.hosts, static_cast<unsigned long long>(d.ticks()),
                static_cast<long long>(d.step_ms()), rm::FormatIso8601(d.end_ms * 1000).c_str(), d.metric.c_str());
    std::printf("encoded %zu %s bodies of <= %llu points: %.1f MB (%.1f bytes/point) in %.2f s\n", bodies.size(),
                format.c_str(), static_cast<unsigned long long>(batch), static_cast<double>(bytes) / 1e6,
                static_cast<double>(bytes) / static_cast<double>(d.points), encode_s);
  }

  if (!output.empty()) {
    std::ofstream f(output, std::ios::binary);
    for (const auto& b : bodies) f.write(b.data.data(), static_cast<std::streamsize>(b.data.size()));
    f.close();
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", output.c_str());
      return 1;
    }
    std::printf("wrote %s (%llu bytes)\n", output.c_str(), static_cast<unsigned long long>(bytes));
    return 0;
  }

  const std::string content_type = format == "protobuf" ? "application/x-protobuf"
                                   : format == "json"   ? "application/json"
                                   : format == "ndjson" ? "application/x-ndjson"
                                                        : "text/plain";
  rm::HttpClient client;
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> ok_points{0}, inserted{0}, errors{0};
  std::mutex mu;
  std::string first_error;
  std::vector<double> latencies_ms;

  auto start = Clock::now();
  std::vector<std::thread> senders;
  for (int c = 0; c < connections; ++c) {
    senders.emplace_back([&] {
      std::vector<double> mine;
      for (size_t b; (b = next.fetch_add(1)) < bodies.size();) {
        rm::OutgoingRequest req;
        req.method = "POST";
        req.target = path;
        req.content_type = content_type;
        req.body = std::move(bodies[b].data);
        if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
        auto t = Clock::now();
        auto resp = client.Send(url, req, std::chrono::milliseconds(timeout_ms));
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
        if (resp.ok() && resp->status >= 200 && resp->status < 300) {
          ok_points += bodies[b].points;
          inserted += InsertedFrom(resp->body);
          continue;
        }
        ++errors;
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.empty()) {
          first_error = resp.ok() ? "HTTP " + std::to_string(resp->status) + ": " + resp->body.substr(0, 500)
                                  : resp.status().ToString();
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : senders) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double rate = static_cast<double>(ok_points.load()) / seconds;

  if (!quiet) {
    std::printf("sent %zu requests over %d connections to %s%s\n", bodies.size(), connections, url.c_str(),
                path.c_str());
    std::printf("elapsed %.3f s, %.0f points/s (%.1f MB/s of %s), errors %llu\n", seconds, rate,
                static_cast<double>(bytes) / 1e6 / seconds, format.c_str(),
                static_cast<unsigned long long>(errors.load()));
    std::printf("request latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", Percentile(latencies_ms, 0.5),
                Percentile(latencies_ms, 0.9), Percentile(latencies_ms, 0.99), Percentile(latencies_ms, 1.0));
    if (!first_error.empty()) std::printf("first error: %s\n", first_error.c_str());
  }
  std::printf("RESULT format=%s points=%llu seconds=%.3f points_per_s=%.0f errors=%llu inserted=%llu bytes=%llu\n",
              format.c_str(), static_cast<unsigned long long>(ok_points.load()), seconds, rate,
              static_cast<unsigned long long>(errors.load()), static_cast<unsigned long long>(inserted.load()),
              static_cast<unsigned long long>(bytes));
  return errors.load() == 0 ? 0 : 1;
}
