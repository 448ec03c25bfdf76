// The six analytics queries of issue 3 (Q1-Q6) as straightforward SQL for
// DuckDB alone, on the schema rm_duckdb_baseline writes:
//   series(id, metric, host, datacenter), points(series_id, ts BIGINT micros, value DOUBLE).
// Used by bench/duckdb_baseline.cc (`--queries`); bench/queries.py asks the
// same questions of RaftMetrics (/aggregate) and VictoriaMetrics (MetricsQL),
// and docs/benchmarks.md lists all three side by side.
//
// Time ranges follow the Prometheus/VictoriaMetrics lookbehind convention that
// the dataset was built for: "the last D" is (end - D, end]. Q5's 1 h buckets
// are [start, start + 1 h), the tumbling buckets of RaftMetrics' `window`, over
// [end - 24 h, end). Tag filters need the series table, so Q3, Q4 and Q6 join
// it; Q1, Q2 and Q5 read points alone (the dataset has one metric). Q4
// aggregates per series_id first and joins the 1,000 partial sums to the series
// names: joining every point and grouping by the host string is 4-5x slower
// (DuckDB compresses and hashes 10M strings), which would flatter the others.
//
// RunDuckDbQueries times each query `runs` times (the result is materialised,
// as a client would need it) and fills `answers` with the last run's result,
// in the shape bench/queries.py compares:
//   {"Q1": {"avg", "count"}, "Q2": {"avg","min","max","count","p95"},
//    "Q3": {"<dc>": {"avg","p95","count"}}, "Q4": [["host", avg], ...],
//    "Q5": [[bucket_start_us, avg, count], ...], "Q6": {"avg", "count"}}
#pragma once

#include "bench/dataset.h"
#include "src/storage/duckdb.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace rmbench {

struct QueryTiming {
  std::string name;  // "Q1"
  std::string sql;
  std::vector<double> runs_ms;
  double Median() const {
    std::vector<double> s = runs_ms;
    std::sort(s.begin(), s.end());
    return s.empty() ? 0 : s[s.size() / 2];
  }
  double Min() const { return runs_ms.empty() ? 0 : *std::min_element(runs_ms.begin(), runs_ms.end()); }
  double Max() const { return runs_ms.empty() ? 0 : *std::max_element(runs_ms.begin(), runs_ms.end()); }
};

// The SQL of Q1-Q6 for the dataset `d` (its end instant fixes the ranges).
inline std::vector<QueryTiming> DuckDbQueries(const Dataset& d) {
  const int64_t end = d.end_ms * 1000;
  const std::string day = "p.ts > " + std::to_string(end - 86'400'000'000LL) + " AND p.ts <= " + std::to_string(end);
  const std::string six_h =
      "p.ts > " + std::to_string(end - 21'600'000'000LL) + " AND p.ts <= " + std::to_string(end);
  const std::string hourly =
      "p.ts >= " + std::to_string(end - 86'400'000'000LL) + " AND p.ts < " + std::to_string(end);
  const std::string metric = "s.metric = '" + d.metric + "'";
  return {
      {"Q1", "SELECT avg(p.value), count(p.value) FROM points p WHERE " + day, {}},
      {"Q2",
       "SELECT avg(p.value), min(p.value), max(p.value), count(p.value), quantile_cont(p.value, 0.95) "
       "FROM points p WHERE " + six_h,
       {}},
      {"Q3",
       "SELECT s.datacenter, avg(p.value), quantile_cont(p.value, 0.95), count(p.value) "
       "FROM points p JOIN series s ON s.id = p.series_id WHERE " + metric + " AND " + day +
           " GROUP BY s.datacenter ORDER BY s.datacenter",
       {}},
      {"Q4",
       "SELECT s.host, sum(a.total) / sum(a.n) AS avg FROM (SELECT p.series_id, sum(p.value) AS total, "
       "count(p.value) AS n FROM points p WHERE " + day + " GROUP BY p.series_id) a "
       "JOIN series s ON s.id = a.series_id WHERE " + metric + " GROUP BY s.host ORDER BY avg DESC LIMIT 10",
       {}},
      {"Q5",
       "SELECT p.ts // 3600000000 * 3600000000 AS b, avg(p.value), count(p.value) FROM points p WHERE " +
           hourly + " GROUP BY b ORDER BY b",
       {}},
      {"Q6",
       "SELECT avg(p.value), count(p.value) FROM points p JOIN series s ON s.id = p.series_id WHERE " + metric +
           " AND s.host LIKE 'web-1%' AND s.datacenter IN ('us-west', 'us-east') AND " + day,
       {}},
  };
}

// The answer of one query's result rows, in the shape described above.
inline nlohmann::json DuckDbAnswer(const std::string& name, const rm::db::Rows& r) {
  using nlohmann::json;
  if (name == "Q1" || name == "Q6") return json{{"avg", r.Double(0, 0)}, {"count", r.Int(1, 0)}};
  if (name == "Q2") {
    return json{{"avg", r.Double(0, 0)}, {"min", r.Double(1, 0)}, {"max", r.Double(2, 0)},
                {"count", r.Int(3, 0)}, {"p95", r.Double(4, 0)}};
  }
  if (name == "Q3") {
    json out = json::object();
    for (size_t i = 0; i < r.size(); ++i) {
      out[r.Text(0, i)] = {{"avg", r.Double(1, i)}, {"p95", r.Double(2, i)}, {"count", r.Int(3, i)}};
    }
    return out;
  }
  json out = json::array();
  for (size_t i = 0; i < r.size(); ++i) {
    if (name == "Q4") out.push_back({r.Text(0, i), r.Double(1, i)});
    if (name == "Q5") out.push_back({r.Int(0, i), r.Double(1, i), r.Int(2, i)});
  }
  return out;
}

// Runs every query `runs` times; prints each one's runs and median. Stops at
// the first failing query.
inline rm::Result<std::vector<QueryTiming>> RunDuckDbQueries(rm::db::Connection& c, const Dataset& d, int runs,
                                                             nlohmann::json* answers) {
  using Clock = std::chrono::steady_clock;
  std::vector<QueryTiming> qs = DuckDbQueries(d);
  for (auto& q : qs) {
    for (int i = 0; i < runs; ++i) {
      auto t0 = Clock::now();
      auto rows = c.Query(q.sql);
      auto t1 = Clock::now();
      if (!rows.ok()) return rows.status();
      q.runs_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      if (i == runs - 1) (*answers)[q.name] = DuckDbAnswer(q.name, *rows);
    }
    std::printf("%s: %s\n  runs ms:", q.name.c_str(), q.sql.c_str());
    for (double x : q.runs_ms) std::printf(" %.2f", x);
    std::printf("  -> median %.2f ms\n", q.Median());
  }
  return qs;
}

}  // namespace rmbench
