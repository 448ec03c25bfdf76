// The benchmark dataset, shared by bench/loadgen.cc and bench/duckdb_baseline.cc
// so that every system under test gets exactly the same points.
//
// Shape (defaults): 10,000,000 points of metric `cpu_usage` from 1,000 hosts
// (web-1, api-1, db-1, cache-1, queue-1, web-2, ...) in 4 datacenters (us-west,
// us-east, eu-west, ap-south), spread over the 24 h that end at a fixed instant
// (2024-01-01T00:00:00Z). Each host reports every `step` = span / ticks
// (8.64 s for 10M points and 1,000 hosts), with a fixed per-host phase, so the
// timestamps of host h are end - span + (tick + 1) * step - phase(h): all in
// the half-open interval (end - span, end], i.e. exactly what a Prometheus-style
// `[24h]` window evaluated at `end` covers. Timestamps are whole milliseconds
// (VictoriaMetrics stores milliseconds).
//
// Point i (0 <= i < points) is in time order: tick = i / hosts, host = i % hosts,
// the order in which a fleet of collectors would deliver them.
//
// Values are whole hundredths in [0, 100] from a deterministic hash, so the
// decimal text "12.34" parses back to exactly the double the binary formats
// carry, and the exact sum of the dataset is known (an integer of cents).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace rmbench {

inline constexpr const char* kRoles[] = {"web", "api", "db", "cache", "queue"};
inline constexpr const char* kDatacenters[] = {"us-west", "us-east", "eu-west", "ap-south"};

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct Dataset {
  uint64_t points = 10'000'000;
  uint32_t hosts = 1000;
  std::string metric = "cpu_usage";
  int64_t end_ms = 1'704'067'200'000;  // 2024-01-01T00:00:00Z
  int64_t span_ms = 86'400'000;        // 24 h

  uint64_t ticks() const { return (points + hosts - 1) / hosts; }
  int64_t step_ms() const { return std::max<int64_t>(1, span_ms / static_cast<int64_t>(ticks())); }
  int64_t start_ms() const { return end_ms - span_ms; }

  static uint32_t HostOf(uint64_t i, uint32_t hosts) { return static_cast<uint32_t>(i % hosts); }
  uint32_t Host(uint64_t i) const { return HostOf(i, hosts); }
  uint64_t Tick(uint64_t i) const { return i / hosts; }

  static std::string HostName(uint32_t h) {
    return std::string(kRoles[h % 5]) + "-" + std::to_string(h / 5 + 1);
  }
  static const char* Datacenter(uint32_t h) { return kDatacenters[h % 4]; }

  int64_t Phase(uint32_t h) const { return step_ms() * static_cast<int64_t>(h) / static_cast<int64_t>(hosts); }
  int64_t TimestampMs(uint64_t i) const {
    return end_ms - span_ms + static_cast<int64_t>(Tick(i) + 1) * step_ms() - Phase(Host(i));
  }

  // The value in hundredths (0..10000): a per-host base load, a slow daily
  // triangle wave and noise.
  int64_t Cents(uint64_t i) const {
    const uint32_t h = Host(i);
    const uint64_t t = Tick(i);
    const int64_t base = 500 + static_cast<int64_t>(SplitMix64(h) % 6000);         // 5.00 .. 64.99
    const uint64_t period = std::max<uint64_t>(2, ticks());
    const int64_t pos = static_cast<int64_t>((t + SplitMix64(h + 7777) % period) % period);
    const int64_t half = static_cast<int64_t>(period / 2);
    const int64_t wave = (pos < half ? pos : 2 * half - pos) * 2000 / std::max<int64_t>(1, half);  // 0..20.00
    const int64_t noise = static_cast<int64_t>(SplitMix64((static_cast<uint64_t>(h) << 32) ^ t) % 1001) - 500;
    return std::clamp<int64_t>(base + wave + noise, 0, 10000);
  }
  double Value(uint64_t i) const { return static_cast<double>(Cents(i)) / 100.0; }

  // Exact totals, for checking what each system answers.
  struct Totals {
    uint64_t count = 0;
    int64_t cents = 0;
    double Average() const { return count ? static_cast<double>(cents) / 100.0 / static_cast<double>(count) : 0; }
  };
  Totals Expected() const {
    Totals t;
    for (uint64_t i = 0; i < points; ++i) t.cents += Cents(i);
    t.count = points;
    return t;
  }
};

// "12.34" for 1234 cents (whole hundredths, no trailing-zero trimming).
inline void AppendCents(std::string& out, int64_t cents) {
  out += std::to_string(cents / 100);
  out += '.';
  out += static_cast<char>('0' + (cents % 100) / 10);
  out += static_cast<char>('0' + cents % 10);
}

}  // namespace rmbench
