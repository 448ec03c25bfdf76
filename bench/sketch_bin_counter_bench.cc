// rm_sketch_counter_bench: what a shard pays per value to count QuantileSketch
// bins (storage/sketch_bin_counter.h, as storage/shard_aggregate.cc uses it:
// BinOf, then one counter per group). Values go to the groups round-robin, as
// the benchmark dataset's points arrive (time order, hosts interleaved), so
// with many groups the counters' memory, not the arithmetic, sets the cost.
// Best of 5 rounds, in thread CPU time (docs/benchmarks.md, "Percentile sketch").
//
//   ninja -C build rm_sketch_counter_bench && build/rm_sketch_counter_bench
#include "src/query/quantile_sketch.h"
#include "src/storage/sketch_bin_counter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <time.h>

namespace {

double CpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

double NsPerValue(const std::vector<double>& values, size_t groups, size_t* bytes) {
  double best = 1e300;
  for (int round = 0; round < 5; ++round) {
    std::vector<rm::SketchBinCounter> counters(groups);
    const double t0 = CpuNs();
    for (size_t i = 0; i < values.size(); ++i) counters[i % groups].Add(rm::QuantileSketch::BinOf(values[i]));
    best = std::min(best, (CpuNs() - t0) / static_cast<double>(values.size()));
    *bytes = 0;
    for (const auto& c : counters) *bytes += c.MemoryBytes();
  }
  return best;
}

}  // namespace

int main() {
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> ln(2, 1.5);
  std::vector<double> hundredths, lognormal;
  for (int i = 0; i < 4'000'000; ++i) {
    hundredths.push_back(static_cast<double>(1 + rng() % 10000) / 100.0);
    lognormal.push_back(ln(rng));
  }
  for (size_t groups : {4, 1000, 4000}) {
    for (const auto& [name, values] : {std::pair{"hundredths in (0, 100]", &hundredths},
                                       std::pair{"lognormal(2, 1.5)", &lognormal}}) {
      size_t bytes = 0;
      const double ns = NsPerValue(*values, groups, &bytes);
      std::printf("%-24s %5zu groups  %6.1f ns/value  %8.1f KiB of counts\n", name, groups, ns,
                  static_cast<double>(bytes) / 1024);
    }
  }
  return 0;
}
