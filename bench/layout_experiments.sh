#!/usr/bin/env bash
# bench/layout_experiments.sh: what would make RaftMetrics' /aggregate meet issue 3's
# goals? Times, on DuckDB alone (one file, the benchmark dataset), the SQL a
# RaftMetrics shard runs for Q1-Q6 (src/storage/shard_aggregate.cc) next to
# cheaper plans and layouts:
#   - grouping through the bound INTEGER[] series -> group list, as the shards do,
#     vs GROUP BY series_id (the series -> group mapping done afterwards, in C++)
#   - count/sum/min/max for every query vs only what was asked
#   - the shards' bucket expression vs integer division, vs an hourly rollup
#     table (series_id, hour, count, sum, min, max)
#   - Q6's series filter on the arrival order vs points clustered by (series_id, ts)
#   - the quantile sketch's ln()-per-row bins vs quantile_cont
# Numbers: docs/benchmarks.md, "Where the time of Q1-Q6 goes".
#
#   bench/layout_experiments.sh [DB]   DB: an rm_duckdb_baseline file (default: made
#                                      here, POINTS=10000000); it is copied, not changed
# Environment: POINTS, RUNS=5, THREADS=2, BUILD_DIR=build-bench.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
BASELINE=$BUILD/rm_duckdb_baseline
POINTS=${POINTS:-10000000}
RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
TMP=$(mktemp -d /tmp/rm-layout.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

if [[ $# -ge 1 ]]; then
  cp "$1" "$TMP/x.duckdb"
  [[ ! -f "$1.wal" ]] || cp "$1.wal" "$TMP/x.duckdb.wal"
else
  "$BASELINE" --db "$TMP/x.duckdb" --points "$POINTS" --runs 1 --threads "$THREADS" | grep RESULT
fi
DB=$TMP/x.duckdb
sql() { "$BASELINE" --db "$DB" --runs "$RUNS" --threads "$THREADS" "${@/#/--sql=}"; }
once() { "$BASELINE" --db "$DB" --runs 1 --threads "$THREADS" "${@/#/--sql=}"; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

END=1704067200000000
DAY="ts >= $((END - 86400000000 + 1000)) AND ts <= $END"   # what /aggregate gets for Q1, Q3, Q4, Q6
HOURLY="ts >= $((END - 86400000000)) AND ts <= $((END - 1000))"
H=3600000000
# The shards' group lookup: series id -> group number, bound as one INTEGER[].
DC_LIST=$(python3 -c 'print("[" + ",".join(str(i % 4) for i in range(1000)) + "]::INTEGER[]")')
HOST_LIST=$(python3 -c 'print("[" + ",".join(str(i) for i in range(1000)) + "]::INTEGER[]")')
# Q6's series: web-1* (host h is web-(h/5+1) when h % 5 == 0) in us-west, us-east (h % 4 in 0, 1).
Q6_IDS=$(python3 -c '
ids = [h for h in range(1000) if h % 5 == 0 and str(h // 5 + 1).startswith("1") and h % 4 in (0, 1)]
print(",".join(map(str, ids)))')
RM_BUCKET="(ts - (((ts % $H) + $H) % $H))"
GAMMA=$(python3 -c 'import math; print(repr(math.log(1.005 / 0.995)))')
SKETCH="CASE WHEN abs(value) < 1e-9 THEN 0 ELSE sign(value)::INTEGER END AS s, \
CASE WHEN abs(value) < 1e-9 THEN 0 ELSE ceil(ln(abs(value)) / $GAMMA)::INTEGER END AS bin, count(*)"

echo
echo "== layouts: points clustered by (series_id, ts); hourly rollup per series"
once "CREATE TABLE points_sorted AS SELECT * FROM points ORDER BY series_id, ts" \
  "CREATE TABLE rollup_1h AS SELECT series_id, ts // $H * $H AS hour, count(value) AS n, sum(value) AS total, \
min(value) AS lo, max(value) AS hi FROM points GROUP BY ALL ORDER BY series_id, hour" \
  "CHECKPOINT" "SELECT count(*) FROM rollup_1h" | grep -E 'sql:|runs ms|^  [0-9]'

echo
echo "== Q1 overall avg (the shards always group by datacenter for by_datacenter, and compute min/max)"
sql "SELECT ($DC_LIST)[series_id + 1] AS g, 0::BIGINT AS b, count(value), sum(value), min(value), max(value) FROM points WHERE $DAY GROUP BY g, b" \
  "SELECT ($DC_LIST)[series_id + 1] AS g, count(value), sum(value) FROM points WHERE $DAY GROUP BY g" \
  "SELECT series_id, count(value), sum(value), min(value), max(value) FROM points WHERE $DAY GROUP BY series_id" \
  "SELECT series_id, count(value), sum(value) FROM points WHERE $DAY GROUP BY series_id" \
  "SELECT count(value), sum(value) FROM points WHERE $DAY" \
  "SELECT sum(n), sum(total) FROM rollup_1h WHERE hour >= $((END - 86400000000)) AND hour < $END" |
  grep -E 'sql:|runs ms' | sed -E 's/\[[0-9,]{100,}\]/[<1000 ints>]/'

echo
echo "== Q2 over 6 h: partials + sketch bins (as the shards) vs quantile_cont"
SIX="ts >= $((END - 21600000000 + 1000)) AND ts <= $END"
sql "SELECT ($DC_LIST)[series_id + 1] AS g, 0::BIGINT AS b, count(value), sum(value), min(value), max(value) FROM points WHERE $SIX GROUP BY g, b" \
  "SELECT ($DC_LIST)[series_id + 1] AS g, 0::BIGINT AS b, $SKETCH FROM points WHERE $SIX GROUP BY g, b, s, bin" \
  "SELECT 0 AS g, CASE WHEN value = 0 THEN 0 ELSE 1 END AS s, ceil(ln(value) / $GAMMA)::INTEGER AS bin, count(*) FROM points WHERE $SIX GROUP BY ALL" \
  "SELECT avg(value), min(value), max(value), count(value), quantile_cont(value, 0.95) FROM points WHERE $SIX" \
  "SELECT avg(value), min(value), max(value), count(value), quantile_cont(value, 0.95) FROM points_sorted WHERE $SIX" |
  grep -E 'sql:|runs ms' | sed -E 's/\[[0-9,]{100,}\]/[<1000 ints>]/'

echo
echo "== Q3 avg, p95 by datacenter"
sql "SELECT ($DC_LIST)[series_id + 1] AS g, 0::BIGINT AS b, count(value), sum(value), min(value), max(value) FROM points WHERE $DAY GROUP BY g, b" \
  "SELECT ($DC_LIST)[series_id + 1] AS g, 0::BIGINT AS b, $SKETCH FROM points WHERE $DAY GROUP BY g, b, s, bin" \
  "SELECT series_id, ceil(ln(value) / $GAMMA)::INTEGER AS bin, count(*) FROM points WHERE $DAY GROUP BY ALL" |
  grep -E 'sql:|runs ms' | sed -E 's/\[[0-9,]{100,}\]/[<1000 ints>]/'

echo
echo "== Q4 top 10 hosts by avg (1,000 groups)"
sql "SELECT ($HOST_LIST)[series_id + 1] AS g, 0::BIGINT AS b, count(value), sum(value), min(value), max(value) FROM points WHERE $DAY GROUP BY g, b" \
  "SELECT series_id, count(value), sum(value) FROM points WHERE $DAY GROUP BY series_id" |
  grep -E 'sql:|runs ms' | sed -E 's/\[[0-9,]{100,}\]/[<1000 ints>]/'

echo
echo "== Q5 1 h buckets over 24 h"
sql "SELECT ($DC_LIST)[series_id + 1] AS g, $RM_BUCKET AS b, count(value), sum(value), min(value), max(value) FROM points WHERE $HOURLY GROUP BY g, b" \
  "SELECT $RM_BUCKET AS b, count(value), sum(value) FROM points WHERE $HOURLY GROUP BY b" \
  "SELECT ts // $H AS b, count(value), sum(value) FROM points WHERE $HOURLY GROUP BY b" \
  "SELECT series_id, ts // $H AS b, count(value), sum(value) FROM points WHERE $HOURLY GROUP BY ALL" \
  "SELECT hour, sum(n), sum(total) FROM rollup_1h WHERE hour >= $((END - 86400000000)) AND hour < $END GROUP BY hour" |
  grep -E 'sql:|runs ms' | sed -E 's/\[[0-9,]{100,}\]/[<1000 ints>]/'

echo
echo "== Q6 $(echo "$Q6_IDS" | tr ',' '\n' | wc -l) series (web-1* in us-west, us-east)"
sql "SELECT ($DC_LIST)[series_id + 1] AS g, 0::BIGINT AS b, count(value), sum(value), min(value), max(value) FROM points WHERE $DAY AND series_id IN ($Q6_IDS) GROUP BY g, b" \
  "SELECT count(value), sum(value) FROM points WHERE $DAY AND series_id IN ($Q6_IDS)" \
  "SELECT count(value), sum(value) FROM points_sorted WHERE $DAY AND series_id IN ($Q6_IDS)" \
  "SELECT sum(n), sum(total) FROM rollup_1h WHERE hour >= $((END - 86400000000)) AND hour < $END AND series_id IN ($Q6_IDS)" |
  grep -E 'sql:|runs ms' | sed -E 's/IN \(([0-9]+,){5,}[0-9]+\)/IN (<ids>)/'
echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
