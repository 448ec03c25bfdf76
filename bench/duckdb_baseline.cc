// rm_duckdb_baseline: the physical limit of RaftMetrics' storage. Loads the
// benchmark dataset (bench/dataset.h) into ONE DuckDB file through the
// vectorised Appender (rm::db::Connection::AppendColumns, the call the shard
// stores use), with no network, no parsing and no partitioning, then times the
// overall average query (count+sum: the physical limit; count/sum/min/max is
// timed too, for reference: DuckDB's double min/max cost several scans) and
// reports the file size.
//
//   rm_duckdb_baseline --db /tmp/base.duckdb [--points N] [--hosts H] [--batch B] [--threads T]
//
// Schema as a shard store: series(id, metric, host, datacenter) described once,
// points(series_id INTEGER, ts BIGINT (micros), value DOUBLE). Each batch of
// --batch points is one AppendColumns call = one committed transaction, like one
// RaftMetrics insert request. The columns are generated before the clock starts.
// The last line is machine-readable:
//   RESULT points=... seconds=... points_per_s=... query_ms=... query4_ms=... bytes=... bytes_per_point=...
//          sorted_bytes_per_point=... peak_rss_kb=... correct=0|1
// sorted_bytes_per_point: the same points copied ORDER BY series_id, ts into a
// second file, i.e. what clustering by series (a compaction) would store.
//
// --queries also times issue 3's Q1-Q6 (bench/duckdb_queries.h) after the
// ingest and prints one more machine-readable line, medians and extremes in ms:
//   QUERIES runs=5 Q1_ms=... Q1_min_ms=... Q1_max_ms=... ... Q6_max_ms=...
// --answers FILE writes their results as JSON for bench/queries.py to compare.
// --queries-only runs just those on an existing --db file (no ingest).
// --sql STATEMENT (repeatable) runs statements on an existing --db file, each
// --runs times, printing the median and the first rows: for layout
// experiments and EXPLAIN ANALYZE (docs/benchmarks.md, "Q1-Q6").
#include "bench/dataset.h"
#include "bench/duckdb_queries.h"
#include "src/storage/duckdb.h"

#include <CLI/CLI.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using rm::Result;
using rmbench::Dataset;
using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

int Fail(const rm::Status& s) {
  std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
  return 1;
}

uint64_t FileBytes(const std::string& path) {
  uint64_t total = 0;
  for (const auto& p : {path, path + ".wal"}) {
    std::error_code ec;
    auto n = std::filesystem::file_size(p, ec);
    if (!ec) total += n;
  }
  return total;
}

long PeakRssKb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// Times Q1-Q6, prints the QUERIES line, writes the answers to `answers_path`
// (when not empty).
rm::Status TimeIssueQueries(rm::db::Connection& c, const Dataset& d, int runs, const std::string& answers_path) {
  nlohmann::json answers = nlohmann::json::object();
  auto timed = rmbench::RunDuckDbQueries(c, d, runs, &answers);
  if (!timed.ok()) return timed.status();
  std::printf("QUERIES runs=%d", runs);
  for (const auto& q : *timed) {
    std::printf(" %s_ms=%.2f %s_min_ms=%.2f %s_max_ms=%.2f", q.name.c_str(), q.Median(), q.name.c_str(), q.Min(),
                q.name.c_str(), q.Max());
  }
  std::printf("\n");
  if (!answers_path.empty()) {
    std::ofstream(answers_path) << answers.dump(1) << "\n";
  }
  return rm::Status::Ok();
}

// Runs each statement `runs` times on `c`; prints timings and up to 12 rows.
rm::Status RunStatements(rm::db::Connection& c, const std::vector<std::string>& statements, int runs) {
  for (const auto& sql : statements) {
    std::vector<double> times;
    rm::db::Rows rows;
    for (int i = 0; i < runs; ++i) {
      auto t0 = Clock::now();
      auto r = c.Query(sql);
      auto t1 = Clock::now();
      if (!r.ok()) return r.status();
      times.push_back(Ms(t0, t1));
      rows = std::move(*r);
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    std::printf("sql: %s\n  runs ms:", sql.c_str());
    for (double x : times) std::printf(" %.2f", x);
    std::printf("  -> median %.2f ms, %zu rows\n", sorted[sorted.size() / 2], rows.size());
    for (size_t r = 0; r < std::min<size_t>(rows.size(), 12); ++r) {
      for (size_t col = 0; col < rows.columns(); ++col) {
        if (rows.IsNull(col, r)) {
          std::printf("%sNULL", col ? " | " : "  ");
        } else if (!rows.Text(col, r).empty()) {
          std::printf("%s%s", col ? " | " : "  ", rows.Text(col, r).c_str());
        } else {
          std::printf("%s%.10g", col ? " | " : "  ", rows.Double(col, r));
        }
      }
      std::printf("\n");
    }
  }
  return rm::Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  Dataset d;
  std::string path = "/tmp/rm_duckdb_baseline.duckdb";
  uint64_t batch = 50'000;
  int threads = 2;
  int runs = 5;
  std::string memory_limit = "4GB";
  bool queries = false;
  bool queries_only = false;
  std::string answers_path;
  std::vector<std::string> statements;

  CLI::App app{"DuckDB alone: Appender ingest and overall-average query over the benchmark dataset"};
  app.add_option("--db", path, "DuckDB file to create (replaced if present)");
  app.add_option("--points", d.points, "Number of points")->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  app.add_option("--hosts", d.hosts, "Number of hosts (series)")->check(CLI::Range(1u, 10'000'000u));
  app.add_option("--batch", batch, "Points per AppendColumns call (one transaction each)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
  app.add_option("--threads", threads, "DuckDB threads")->check(CLI::Range(1, 256));
  app.add_option("--memory-limit", memory_limit, "DuckDB memory_limit");
  app.add_option("--runs", runs, "Query repetitions (the median is reported)")->check(CLI::Range(1, 1000));
  app.add_flag("--queries", queries, "Also time issue 3's queries Q1-Q6 (bench/duckdb_queries.h)");
  app.add_flag("--queries-only", queries_only, "Only time Q1-Q6 on the existing --db file");
  app.add_option("--answers", answers_path, "Write Q1-Q6's results to this JSON file");
  app.add_option("--sql", statements, "Run this statement on the existing --db file (repeatable)");
  CLI11_PARSE(app, argc, argv);

  if (!statements.empty()) {
    auto db = rm::db::Database::Open(path, {{"threads", std::to_string(threads)}, {"memory_limit", memory_limit}});
    if (!db.ok()) return Fail(db.status());
    auto conn = (*db)->Connect();
    if (!conn.ok()) return Fail(conn.status());
    rm::Status s = RunStatements(**conn, statements, runs);
    return s.ok() ? 0 : Fail(s);
  }
  if (queries_only) {
    auto db = rm::db::Database::Open(path, {{"threads", std::to_string(threads)}, {"memory_limit", memory_limit}});
    if (!db.ok()) return Fail(db.status());
    auto conn = (*db)->Connect();
    if (!conn.ok()) return Fail(conn.status());
    rm::Status s = TimeIssueQueries(**conn, d, runs, answers_path);
    return s.ok() ? 0 : Fail(s);
  }

  std::error_code ec;
  std::filesystem::remove(path, ec);
  std::filesystem::remove(path + ".wal", ec);

  // Generate every batch's columns first (not timed).
  auto g0 = Clock::now();
  const uint64_t nbatches = (d.points + batch - 1) / batch;
  std::vector<rm::db::ColumnBatch> batches(nbatches);
  for (uint64_t b = 0; b < nbatches; ++b) {
    const uint64_t lo = b * batch, hi = std::min(d.points, lo + batch);
    std::vector<int32_t> series;
    std::vector<int64_t> ts;
    std::vector<double> values;
    series.reserve(hi - lo);
    ts.reserve(hi - lo);
    values.reserve(hi - lo);
    for (uint64_t i = lo; i < hi; ++i) {
      series.push_back(static_cast<int32_t>(d.Host(i)));
      ts.push_back(d.TimestampMs(i) * 1000);
      values.push_back(d.Value(i));
    }
    batches[b].columns = {std::move(series), std::move(ts), std::move(values)};
  }
  auto g1 = Clock::now();
  auto expected = d.Expected();
  std::printf("generated %llu points in %llu batches of <= %llu in %.0f ms; DuckDB %s, threads=%d\n",
              static_cast<unsigned long long>(d.points), static_cast<unsigned long long>(nbatches),
              static_cast<unsigned long long>(batch), Ms(g0, g1), rm::db::LibraryVersion().c_str(), threads);

  auto db = rm::db::Database::Open(path, {{"threads", std::to_string(threads)}, {"memory_limit", memory_limit}});
  if (!db.ok()) return Fail(db.status());
  auto conn = (*db)->Connect();
  if (!conn.ok()) return Fail(conn.status());
  rm::db::Connection& c = **conn;
  rm::Status s = c.Execute(
      "CREATE TABLE series(id INTEGER PRIMARY KEY, metric VARCHAR NOT NULL, host VARCHAR, datacenter VARCHAR);"
      "CREATE TABLE points(series_id INTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE NOT NULL);");
  if (!s.ok()) return Fail(s);
  {
    std::vector<std::vector<rm::db::Param>> rows;
    for (uint32_t h = 0; h < d.hosts; ++h) {
      rows.push_back({rm::db::Param::Int(h), rm::db::Param::Text(d.metric), rm::db::Param::Text(Dataset::HostName(h)),
                      rm::db::Param::Text(Dataset::Datacenter(h))});
    }
    s = c.AppendRows("series", rows);
    if (!s.ok()) return Fail(s);
  }

  // Ingest: one AppendColumns (one commit) per batch.
  auto t0 = Clock::now();
  for (auto& cb : batches) {
    s = c.AppendColumns("points", cb);
    if (!s.ok()) return Fail(s);
    cb = {};  // free as we go, like a server would
  }
  auto t1 = Clock::now();
  s = c.Execute("CHECKPOINT");
  if (!s.ok()) return Fail(s);
  auto t2 = Clock::now();
  const double ingest_s = Ms(t0, t1) / 1000;
  const double rate = static_cast<double>(d.points) / ingest_s;
  std::printf("ingest: %.3f s, %.0f points/s (appends committed); CHECKPOINT %.0f ms -> %.0f points/s incl. checkpoint\n",
              ingest_s, rate, Ms(t1, t2), static_cast<double>(d.points) / (Ms(t0, t2) / 1000));

  // Queries. The overall average needs only count and sum (the physical limit);
  // count/sum/min/max is timed as well, for reference.
  struct Timed {
    double median_ms = 0;
    uint64_t count = 0;
    double average = 0;
  };
  auto time_query = [&](const std::string& sql) -> Result<Timed> {
    std::vector<double> times;
    Timed t;
    for (int r = 0; r < runs; ++r) {
      auto q0 = Clock::now();
      auto rows = c.Query(sql);
      auto q1 = Clock::now();
      if (!rows.ok()) return rows.status();
      t.count = static_cast<uint64_t>(rows->Int(0, 0));
      t.average = rows->Double(1, 0) / static_cast<double>(t.count);
      times.push_back(Ms(q0, q1));
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    t.median_ms = sorted[sorted.size() / 2];
    std::printf("query: %s\n  runs ms:", sql.c_str());
    for (double x : times) std::printf(" %.2f", x);
    std::printf("  -> median %.2f ms; count=%llu average=%.12g\n", t.median_ms,
                static_cast<unsigned long long>(t.count), t.average);
    return t;
  };
  auto avg = time_query("SELECT count(value), sum(value) FROM points");
  if (!avg.ok()) return Fail(avg.status());
  auto all4 = time_query("SELECT count(value), sum(value), min(value), max(value) FROM points");
  if (!all4.ok()) return Fail(all4.status());
  std::printf("expected count=%llu average=%.12g\n", static_cast<unsigned long long>(expected.count),
              expected.Average());
  const bool correct = avg->count == expected.count && std::fabs(avg->average - expected.Average()) < 1e-9 &&
                       all4->count == expected.count;
  if (!correct) std::printf("WARNING: the query result does not match the dataset\n");

  const long peak_rss_kb = PeakRssKb();  // ingest and the average queries (the sorted copy below sorts in memory)
  if (queries) {  // after the RSS reading: quantile_cont holds the values it ranks
    s = TimeIssueQueries(c, d, runs, answers_path);
    if (!s.ok()) return Fail(s);
  }

  // The same points clustered by series and time, as a compaction would leave
  // them: how much of the file size is the arrival order's fault.
  const std::string sorted_path = path + ".sorted";
  std::filesystem::remove(sorted_path, ec);
  std::filesystem::remove(sorted_path + ".wal", ec);
  s = c.Execute("ATTACH '" + sorted_path + "' AS sorted; "
                "CREATE TABLE sorted.points AS SELECT * FROM points ORDER BY series_id, ts; DETACH sorted;");
  if (!s.ok()) return Fail(s);
  const uint64_t sorted_bytes = FileBytes(sorted_path);
  std::filesystem::remove(sorted_path, ec);
  std::filesystem::remove(sorted_path + ".wal", ec);
  std::printf("sorted copy (ORDER BY series_id, ts): %llu bytes, %.2f bytes/point\n",
              static_cast<unsigned long long>(sorted_bytes),
              static_cast<double>(sorted_bytes) / static_cast<double>(d.points));

  conn->reset();
  db->reset();
  const uint64_t bytes = FileBytes(path);
  std::printf("file: %s %llu bytes, %.2f bytes/point; peak RSS %ld kB (ingest and queries)\n", path.c_str(),
              static_cast<unsigned long long>(bytes), static_cast<double>(bytes) / static_cast<double>(d.points),
              peak_rss_kb);
  std::printf("RESULT points=%llu seconds=%.3f points_per_s=%.0f checkpoint_ms=%.0f query_ms=%.2f query4_ms=%.2f "
              "bytes=%llu bytes_per_point=%.2f sorted_bytes_per_point=%.2f peak_rss_kb=%ld correct=%d\n",
              static_cast<unsigned long long>(d.points), ingest_s, rate, Ms(t1, t2), avg->median_ms, all4->median_ms,
              static_cast<unsigned long long>(bytes), static_cast<double>(bytes) / static_cast<double>(d.points),
              static_cast<double>(sorted_bytes) / static_cast<double>(d.points), peak_rss_kb, correct ? 1 : 0);
  return correct ? 0 : 1;
}
