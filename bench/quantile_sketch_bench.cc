// rm_sketch_bench: the cost of QuantileSketch alone, in one process, on the
// benchmark dataset's kind of values (whole hundredths in [0, 100]) and on
// values spread over many decades. Times Add per value, Merge of shard-sized
// sketches, AddBin (the control node rebuilding shards' bins) and Quantile.
// The shards' own counting: bench/sketch_bin_counter_bench.cc.
// Best of 7 rounds, in thread CPU time. Uses only the calls every version of
// the sketch has, so the same file times an older quantile_sketch.cc
// (docs/benchmarks.md, "Percentile sketch").
//
//   ninja -C build rm_sketch_bench && build/rm_sketch_bench
#include "src/query/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <time.h>

namespace {

// This thread's CPU time: other work on a shared machine inflates wall time
// far more than it does this.
struct Clock {
  using time_point = double;
  static double now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
  }
};

double NsSince(Clock::time_point t0, double per) { return (Clock::now() - t0) / per; }

void Run(const char* name, const std::vector<double>& values) {
  constexpr int kShards = 16;
  constexpr int kRounds = 7;
  double add_ns = 1e300, merge_ns = 1e300, addbin_ns = 1e300, quantile_ns = 1e300;
  size_t bins = 0;
  double p95 = 0;
  for (int round = 0; round < kRounds; ++round) {  // best of kRounds
    auto t0 = Clock::now();
    std::vector<rm::QuantileSketch> shards(kShards);
    for (size_t i = 0; i < values.size(); ++i) shards[i % kShards].Add(values[i]);
    add_ns = std::min(add_ns, NsSince(t0, static_cast<double>(values.size())));

    t0 = Clock::now();
    rm::QuantileSketch merged;
    for (const auto& s : shards) merged.Merge(s);
    merge_ns = std::min(merge_ns, NsSince(t0, kShards));

    t0 = Clock::now();
    rm::QuantileSketch rebuilt;
    for (const auto& s : shards) {
      for (const auto& [b, c] : s.positive()) rebuilt.AddBin(1, b, c);
      for (const auto& [b, c] : s.negative()) rebuilt.AddBin(-1, b, c);
      rebuilt.AddBin(0, 0, s.zeros());
    }
    addbin_ns = std::min(addbin_ns, NsSince(t0, kShards));

    constexpr int kQueries = 200;
    t0 = Clock::now();
    double sink = 0;
    for (int i = 0; i < kQueries; ++i) sink += *merged.Quantile(0.5 + 0.45 * i / kQueries);
    quantile_ns = std::min(quantile_ns, NsSince(t0, kQueries));
    bins = merged.positive().size() + merged.negative().size();
    p95 = *merged.Quantile(0.95) + 0 * sink;
  }
  std::printf("%-24s %7zu values %6zu bins  Add %6.1f ns/value  Merge %7.1f us/shard  AddBin %7.1f us/shard  "
              "Quantile %7.1f us  p95 %.6g\n",
              name, values.size(), bins, add_ns, merge_ns / 1000, addbin_ns / 1000, quantile_ns / 1000, p95);
}

}  // namespace

int main() {
  std::mt19937_64 rng(1);
  std::vector<double> hundredths, lognormal, wide;
  std::lognormal_distribution<double> ln(2, 1.5);
  std::uniform_real_distribution<double> exponent(-9, 300);
  for (int i = 0; i < 2'000'000; ++i) {
    hundredths.push_back(static_cast<double>(rng() % 10001) / 100.0);
    lognormal.push_back(ln(rng));
    wide.push_back(std::pow(10.0, exponent(rng)) * (i % 2 ? 1 : -1));
  }
  Run("hundredths in [0, 100]", hundredths);
  Run("lognormal(2, 1.5)", lognormal);
  Run("+-1e-9..1e300", wide);
  return 0;
}
