#!/usr/bin/env bash
# bench/compare.sh: RaftMetrics vs DuckDB alone vs VictoriaMetrics, in one run.
#
# On the same deterministic dataset (bench/dataset.h: 10M points of cpu_usage,
# 1,000 hosts, 4 datacenters, 24 h ending 2024-01-01T00:00:00Z) it
#   1. builds raftmetrics, rm_loadgen and rm_duckdb_baseline (Release) in build-bench/
#   2. starts a fresh `raftmetrics local` cluster (2 workers) on free ports, ingests
#      with rm_loadgen as columnar protobuf batches, times GET /analytics (median of
#      RUNS), reads peak RSS (VmHWM) of every node and the bytes on disk
#   3. does the same ingest as JSON {"points":[...]} batches into a second fresh cluster
#   4. runs rm_duckdb_baseline: one DuckDB file through the Appender, same query
#   5. runs VictoriaMetrics (Debian package `victoria-metrics`; installed with apt-get
#      when missing) fed the same points as Influx line protocol, 5,000 lines per
#      request, then times the equivalent overall average through /api/v1/query
#   6. times issue 3's analytics queries Q1-Q6 on all three (bench/queries.py:
#      RaftMetrics GET /aggregate on the protobuf cluster, VictoriaMetrics MetricsQL;
#      rm_duckdb_baseline --queries: SQL in bench/duckdb_queries.h), checks that
#      the answers agree
#   7. prints side-by-side tables with ratios and the issues' goals
#
# Environment (all optional):
#   POINTS=10000000 HOSTS=1000     dataset size (POINTS=1000000 for a quick run)
#   BATCH=50000 CONNECTIONS=4      RaftMetrics points per request / parallel connections
#   VM_BATCH=5000                  VictoriaMetrics lines per request
#   WORKERS=2 RUNS=5               cluster workers / query repetitions (median reported)
#   SHARDS=16                      shards of the RaftMetrics cluster (`local --shards`)
#   JSON_FORMAT=json               json or ndjson for the second RaftMetrics run
#   SKIP_BUILD=1 SKIP_RM=1 SKIP_JSON=1 SKIP_DUCKDB=1 SKIP_VM=1 SKIP_QUERIES=1
#   QUERIES_ONLY=1                 quick run for the Q1-Q6 part: no JSON cluster, and
#                                  POINTS=1000000 unless POINTS is given
#   PROFILE=1                      perf record the nodes during both ingests and during
#                                  30 /analytics queries (RESULTS/perf-*.txt)
#   PROFILE_QUERIES="Q5 Q6"        perf record the nodes during 30 repetitions of each
#                                  listed query (after all timings; RESULTS/perf-query-Qn.txt);
#                                  PROFILE_QUERIES=all for Q1-Q6
#   RESULTS=build-bench/bench-results   where logs, perf reports and summary.md go
#   KEEP=1                         keep the temporary data directories
#   WAIT_QUIET=600                 first wait up to 600 s for the 1-minute load average to fall
#                                  below 1.0 (other work on the machine skews every number)
#
# Every process it starts is stopped on exit (by pid), also on Ctrl-C or failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
if [[ -n "${QUERIES_ONLY:-}" ]]; then
  SKIP_JSON=1
  POINTS=${POINTS:-1000000}
fi
POINTS=${POINTS:-10000000}
HOSTS=${HOSTS:-1000}
BATCH=${BATCH:-50000}
CONNECTIONS=${CONNECTIONS:-4}
VM_BATCH=${VM_BATCH:-5000}
WORKERS=${WORKERS:-2}
SHARDS=${SHARDS:-16}
RUNS=${RUNS:-5}
JSON_FORMAT=${JSON_FORMAT:-json}
RESULTS=${RESULTS:-$BUILD/bench-results}
END_S=1704067200  # the dataset's fixed end: 2024-01-01T00:00:00Z

mkdir -p "$RESULTS"
rm -f "$RESULTS"/perf-*
QDIR=$RESULTS/queries  # Q1-Q6: timings and answers of every system (bench/queries.py)
rm -rf "$QDIR"
mkdir -p "$QDIR"
[[ "${PROFILE_QUERIES:-}" != all ]] || PROFILE_QUERIES="Q1 Q2 Q3 Q4 Q5 Q6"
TMP=$(mktemp -d /tmp/rm-bench.XXXXXX)
PIDS=()  # every background process we started

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  if [[ -z "${KEEP:-}" ]]; then rm -rf "$TMP"; else echo "kept $TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '\n== %s   [load average %s]\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
# kv KEY < "RESULT a=1 b=2"  -> value of KEY
kv() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" | tail -1; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else print a[int((NR+1)/2)]}'; }
fmt() { awk -v x="$1" -v d="${2:-0}" 'BEGIN { if (x=="" || x=="nan") print "-"; else printf "%.*f", d, x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a=="" || b=="" || b+0==0 || a=="nan" || b=="nan") print "-"; else printf "%.2f", a/b }'; }

# Prints N consecutive free TCP ports' first port on 127.0.0.1.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(1000):
    base = random.randint(20000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
        print(base)
        sys.exit(0)
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
sys.exit("no free ports")
EOF
}

wait_for() {  # wait_for URL PATTERN SECONDS [curl args...]
  local url=$1 pattern=$2 deadline=$((SECONDS + $3))
  shift 3
  while ((SECONDS < deadline)); do
    if curl -sf "$@" "$url" 2>/dev/null | grep -q "$pattern"; then return 0; fi
    sleep 0.2
  done
  echo "timed out waiting for $1 to show $2" >&2
  return 1
}

# Peak RSS (kB) of one pid, from /proc/<pid>/status VmHWM.
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# time_get OUTFILE URL [curl args...]: RUNS timed GETs; prints the median ms.
time_get() {
  local out=$1 url=$2
  shift 2
  local times=()
  for _ in $(seq "$RUNS"); do
    local t
    t=$(curl -sS -o "$out" -w '%{time_total}' "$@" "$url")
    times+=("$(awk -v t="$t" 'BEGIN {printf "%.2f", t * 1000}')")
  done
  echo "   runs ms: ${times[*]}" >&2
  printf '%s\n' "${times[@]}" | median
}

LOADGEN=$BUILD/rm_loadgen
BASELINE=$BUILD/rm_duckdb_baseline
RAFTMETRICS=$BUILD/raftmetrics

# ---------------------------------------------------------------------------
log "build (Release) in $BUILD"
if [[ -z "${SKIP_BUILD:-}" ]]; then
  # RM_WERROR=OFF: GCC 12 at -O3 reports a false -Wrestrict inside libstdc++
  # (std::string operator+) that -Werror would turn into a build failure.
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRM_WERROR=OFF >"$RESULTS/cmake.log"
  ninja -C "$BUILD" raftmetrics rm_loadgen rm_duckdb_baseline >"$RESULTS/build.log" ||
    { tail -40 "$RESULTS/build.log"; exit 1; }
fi
for b in "$LOADGEN" "$BASELINE" "$RAFTMETRICS"; do [[ -x $b ]] || { echo "missing $b" >&2; exit 1; }; done

if [[ -n "${WAIT_QUIET:-}" ]]; then
  quiet_deadline=$((SECONDS + WAIT_QUIET))
  while ((SECONDS < quiet_deadline)) && awk '{exit !($1 >= 1.0)}' /proc/loadavg; do sleep 5; done
fi
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); $(uname -sr)"
echo "dataset: POINTS=$POINTS HOSTS=$HOSTS; RaftMetrics BATCH=$BATCH CONNECTIONS=$CONNECTIONS WORKERS=$WORKERS SHARDS=$SHARDS; VM_BATCH=$VM_BATCH; RUNS=$RUNS"
"$LOADGEN" --points "$POINTS" --hosts "$HOSTS" --expect-only | tee "$RESULTS/expect.txt"
EXPECT_COUNT=$(kv count <"$RESULTS/expect.txt")
EXPECT_AVG=$(kv average <"$RESULTS/expect.txt")

check_avg() {  # check_avg NAME COUNT AVERAGE
  if awk -v c="$2" -v a="$3" -v ec="$EXPECT_COUNT" -v ea="$EXPECT_AVG" \
       'BEGIN { d = a - ea; if (d < 0) d = -d; exit !(c == ec && d < 1e-6) }'; then
    echo "   $1: count=$2 average=$3 matches the dataset"
  else
    echo "   WARNING $1: count=$2 average=$3, expected count=$EXPECT_COUNT average=$EXPECT_AVG"
  fi
}

# ---------------------------------------------------------------------------
# The clusters run with authentication on, as in production (the token is
# checked on every request), but without a rate limit: one benchmark client
# sends far more than 1000 requests a minute on purpose.
export AUTH_TOKENS=${BENCH_TOKEN:-bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}
export RATE_LIMIT_PER_MINUTE=0
# A slow shard would otherwise turn a query into a partial answer after 2 s.
export QUERY_TIMEOUT_MS=${QUERY_TIMEOUT_MS:-60000}
RM_AUTH=(-H "Authorization: Bearer $AUTH_TOKENS")

# RaftMetrics: start_cluster NAME -> sets CL_PID, CL_URL, CL_DATA, CL_NODES
start_cluster() {
  local name=$1
  local base
  base=$(free_ports $((WORKERS + 1)))
  CL_DATA=$TMP/$name
  CL_URL=127.0.0.1:$base
  "$RAFTMETRICS" local --data "$CL_DATA" --port "$base" --worker-port $((base + 1)) --workers "$WORKERS" \
    --shards "$SHARDS" >"$RESULTS/$name.log" 2>&1 &
  CL_PID=$!
  PIDS+=("$CL_PID")
  wait_for "http://$CL_URL/health" '"cluster_ready":true' 30 "${RM_AUTH[@]}"
  wait_for "http://$CL_URL/health" "\"healthy\":$WORKERS" 30 "${RM_AUTH[@]}"
  CL_NODES=$(pgrep -P "$CL_PID" | tr '\n' ' ')
  echo "   cluster $name: control $CL_URL, pids local=$CL_PID nodes=$CL_NODES, data $CL_DATA"
}

cluster_rss_mb() {  # sum of the nodes' peak RSS, MB
  local total=0
  for p in $CL_NODES; do total=$((total + $(hwm_kb "$p"))); done
  awk -v k="$total" 'BEGIN {printf "%.0f", k / 1024}'
}
cluster_rss_detail() {
  for p in $CL_NODES; do
    printf '%s=%sMB ' "$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{print $2 "-" $4}')" \
      "$(awk -v k="$(hwm_kb "$p")" 'BEGIN {printf "%.0f", k / 1024}')"
  done
}

stop_cluster() {  # SIGTERM the `local` parent: it stops its nodes cleanly
  kill -TERM "$CL_PID" 2>/dev/null || true
  wait "$CL_PID" 2>/dev/null || true
}

# CPU seconds (user+system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0; }
node_name() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | awk '{print $2 "-" $4}'; }

declare -A CPU0
cpu_mark() { for p in $CL_NODES; do CPU0[$p]=$(cpu_s "$p"); done; }
cpu_report() {
  printf '   CPU seconds used during the ingest:'
  for p in $CL_NODES; do
    printf ' %s=%s' "$(node_name "$p")" "$(awk -v a="$(cpu_s "$p")" -v b="${CPU0[$p]}" 'BEGIN {printf "%.1f", a - b}')"
  done
  echo
}

# perf_start TAG: one `perf record` per cluster node (RESULTS/perf-TAG-<node>.data).
perf_start() {
  PERF_PIDS=()
  PERF_TAG=$1
  command -v perf >/dev/null || { echo "   (perf not installed)"; return 0; }
  for p in $CL_NODES; do
    local out=$RESULTS/perf-$PERF_TAG-$(node_name "$p").data
    # PERF_CALLGRAPH=dwarf for call chains (the Release build has no frame pointers).
    perf record -F 999 ${PERF_CALLGRAPH:+--call-graph "$PERF_CALLGRAPH"} -o "$out" -p "$p" >"$out.log" 2>&1 &
    PERF_PIDS+=($!)
    PIDS+=($!)
  done
  sleep 0.5
}
# perf_stop: stops the recorders, writes RESULTS/perf-TAG.txt (per node: by library, by symbol).
perf_stop() {
  [[ ${#PERF_PIDS[@]} -gt 0 ]] || return 0
  for p in "${PERF_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${PERF_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  local clean='s/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//'
  local txt=$RESULTS/perf-$PERF_TAG.txt
  : >"$txt"
  for p in $CL_NODES; do
    local data=$RESULTS/perf-$PERF_TAG-$(node_name "$p").data
    {
      echo "## $(node_name "$p") (pid $p): $(grep -o '([0-9]* samples)' "$data.log" || true)"
      echo "# by library"
      perf report -i "$data" --stdio --no-children --sort dso -g none --percent-limit 1 2>/dev/null |
        grep -v '^#' | grep -v '^$' | sed -E "$clean" || true
      echo "# by symbol"
      perf report -i "$data" --stdio --no-children --sort dso,sym -g none --percent-limit 0.5 2>/dev/null |
        grep -v '^#' | grep -v '^$' | sed -E "$clean" | cut -c1-200 | head -40 || true
      echo
    } >>"$txt"
  done
  echo "   perf profiles: $txt"
  PERF_PIDS=()
}

declare -A R  # results

if [[ -z "${SKIP_RM:-}" ]]; then
  log "RaftMetrics: protobuf ingest (columnar SeriesPoints, $BATCH points/request, $CONNECTIONS connections)"
  start_cluster rm-protobuf
  if [[ -n "${PROFILE:-}" ]]; then perf_start ingest; fi
  cpu_mark
  "$LOADGEN" --url "$CL_URL" --token "$AUTH_TOKENS" --points "$POINTS" --hosts "$HOSTS" --batch "$BATCH" \
    --connections "$CONNECTIONS" --format protobuf | tee "$RESULTS/rm-protobuf-ingest.txt"
  cpu_report
  if [[ -n "${PROFILE:-}" ]]; then perf_stop; fi
  R[pb_rate]=$(kv points_per_s <"$RESULTS/rm-protobuf-ingest.txt")
  R[pb_errors]=$(kv errors <"$RESULTS/rm-protobuf-ingest.txt")
  # Acknowledged points are durable (synced to each shard's command log) but up
  # to WRITE_BUFFER_POINTS per shard still wait for DuckDB; the first read writes
  # them there. Counting that read in gives the rate until queryable, the fair
  # twin of VictoriaMetrics' rate plus its force_flush below.
  first_s=$(curl -sS -o /dev/null -w '%{time_total}' "${RM_AUTH[@]}" "http://$CL_URL/analytics")
  R[pb_first_ms]=$(awk -v t="$first_s" 'BEGIN {printf "%.0f", t * 1000}')
  R[pb_rate_q]=$(awk -v n="$POINTS" -v s="$(kv seconds <"$RESULTS/rm-protobuf-ingest.txt")" -v t="$first_s" \
    'BEGIN {printf "%.0f", n / (s + t)}')
  echo "   first /analytics after the ingest took ${R[pb_first_ms]} ms (it writes the shards' write buffers to DuckDB);" \
    "ingest until queryable: ${R[pb_rate_q]} points/s"

  log "RaftMetrics: GET /analytics (overall average), median of $RUNS"
  R[rm_query]=$(time_get "$TMP/analytics.json" "http://$CL_URL/analytics" "${RM_AUTH[@]}")
  cat "$TMP/analytics.json"; echo
  check_avg RaftMetrics "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' <"$TMP/analytics.json")" \
    "$(python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["average"]))' <"$TMP/analytics.json")"
  echo "   median ${R[rm_query]} ms"
  if [[ -z "${SKIP_QUERIES:-}" ]]; then
    log "RaftMetrics: Q1-Q6 through GET /aggregate, median of $RUNS"
    python3 "$ROOT/bench/queries.py" time --system rm --url "$CL_URL" --token "$AUTH_TOKENS" --runs "$RUNS" \
      --out "$QDIR" || echo "   WARNING: some RaftMetrics queries failed"
  fi
  if [[ -n "${PROFILE:-}" ]]; then
    perf_start query
    for _ in $(seq 30); do curl -s -o /dev/null "${RM_AUTH[@]}" "http://$CL_URL/analytics"; done
    perf_stop
  fi
  for q in ${PROFILE_QUERIES:-}; do
    log "RaftMetrics: perf during 30 x $q"
    perf_start "query-$q"
    python3 "$ROOT/bench/queries.py" repeat --system rm --url "$CL_URL" --token "$AUTH_TOKENS" --query "$q" --times 30
    perf_stop
  done
  R[pb_rss]=$(cluster_rss_mb)
  echo "   peak RSS: $(cluster_rss_detail)(sum ${R[pb_rss]} MB)"
  stop_cluster
  R[rm_bytes]=$(du -sb "$CL_DATA" | cut -f1)
  echo "   on disk after a clean stop: ${R[rm_bytes]} bytes ($(du -sh "$CL_DATA" | cut -f1))"
  rm -rf "$CL_DATA"
fi

if [[ -z "${SKIP_JSON:-}${SKIP_RM:-}" ]]; then
  log "RaftMetrics: $JSON_FORMAT ingest ($BATCH points/request, $CONNECTIONS connections), fresh cluster"
  start_cluster rm-json
  if [[ -n "${PROFILE:-}" ]]; then perf_start json-ingest; fi
  cpu_mark
  "$LOADGEN" --url "$CL_URL" --token "$AUTH_TOKENS" --points "$POINTS" --hosts "$HOSTS" --batch "$BATCH" \
    --connections "$CONNECTIONS" --format "$JSON_FORMAT" | tee "$RESULTS/rm-json-ingest.txt"
  cpu_report
  if [[ -n "${PROFILE:-}" ]]; then perf_stop; fi
  R[js_rate]=$(kv points_per_s <"$RESULTS/rm-json-ingest.txt")
  R[js_errors]=$(kv errors <"$RESULTS/rm-json-ingest.txt")
  first_s=$(curl -sS -o "$TMP/analytics-json.json" -w '%{time_total}' "${RM_AUTH[@]}" "http://$CL_URL/analytics")
  R[js_rate_q]=$(awk -v n="$POINTS" -v s="$(kv seconds <"$RESULTS/rm-json-ingest.txt")" -v t="$first_s" \
    'BEGIN {printf "%.0f", n / (s + t)}')
  echo "   first /analytics after the ingest took $(awk -v t="$first_s" 'BEGIN {printf "%.0f", t * 1000}') ms;" \
    "ingest until queryable: ${R[js_rate_q]} points/s"
  check_avg "RaftMetrics ($JSON_FORMAT)" \
    "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' <"$TMP/analytics-json.json")" \
    "$(python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["average"]))' <"$TMP/analytics-json.json")"
  R[js_rss]=$(cluster_rss_mb)
  echo "   peak RSS: $(cluster_rss_detail)(sum ${R[js_rss]} MB)"
  stop_cluster
  R[js_bytes]=$(du -sb "$CL_DATA" | cut -f1)
  rm -rf "$CL_DATA"
fi

# ---------------------------------------------------------------------------
if [[ -z "${SKIP_DUCKDB:-}" ]]; then
  DB_QUERIES=()
  [[ -n "${SKIP_QUERIES:-}" ]] || DB_QUERIES=(--queries --answers "$QDIR/duckdb-answers.json")
  log "DuckDB alone: Appender into one file ($BATCH points per append/commit), then the overall average"
  "$BASELINE" --db "$TMP/baseline.duckdb" --points "$POINTS" --hosts "$HOSTS" --batch "$BATCH" \
    --runs "$RUNS" --threads "$(nproc)" "${DB_QUERIES[@]}" | tee "$RESULTS/duckdb.txt"
  R[db_rate]=$(kv points_per_s <"$RESULTS/duckdb.txt")
  R[db_query]=$(kv query_ms <"$RESULTS/duckdb.txt")
  R[db_query4]=$(kv query4_ms <"$RESULTS/duckdb.txt")
  R[db_sorted_bpp]=$(kv sorted_bytes_per_point <"$RESULTS/duckdb.txt")
  R[db_bytes]=$(kv bytes <"$RESULTS/duckdb.txt")
  R[db_rss]=$(awk -v k="$(kv peak_rss_kb <"$RESULTS/duckdb.txt")" 'BEGIN {printf "%.0f", k / 1024}')
  rm -f "$TMP/baseline.duckdb" "$TMP/baseline.duckdb.wal"
fi

# ---------------------------------------------------------------------------
if [[ -z "${SKIP_VM:-}" ]]; then
  log "VictoriaMetrics (Debian package), Influx line protocol, $VM_BATCH lines/request, $CONNECTIONS connections"
  if ! command -v victoria-metrics >/dev/null; then
    echo "   installing victoria-metrics with apt-get"
    apt-get install -y victoria-metrics >"$RESULTS/apt.log" 2>&1 ||
      { apt-get update >>"$RESULTS/apt.log" 2>&1 && apt-get install -y victoria-metrics >>"$RESULTS/apt.log" 2>&1; }
  fi
  VM_VERSION=$(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo "?")
  VM_PORT=$(free_ports 1)
  VM_DATA=$TMP/vm-data
  # -influxSkipSingleField: `cpu_usage,... value=1` is stored as metric cpu_usage.
  # -search.disableCache: no rollup result cache, so every timed query reads the data.
  victoria-metrics -storageDataPath "$VM_DATA" -httpListenAddr "127.0.0.1:$VM_PORT" -retentionPeriod 100y \
    -influxSkipSingleField -search.disableCache >"$RESULTS/victoria-metrics.log" 2>&1 &
  VM_PID=$!
  PIDS+=("$VM_PID")
  wait_for "http://127.0.0.1:$VM_PORT/health" OK 30
  echo "   victoria-metrics $VM_VERSION pid $VM_PID on 127.0.0.1:$VM_PORT, data $VM_DATA"
  "$LOADGEN" --url "127.0.0.1:$VM_PORT" --points "$POINTS" --hosts "$HOSTS" --batch "$VM_BATCH" \
    --connections "$CONNECTIONS" --format influx | tee "$RESULTS/vm-ingest.txt"
  R[vm_rate]=$(kv points_per_s <"$RESULTS/vm-ingest.txt")
  R[vm_errors]=$(kv errors <"$RESULTS/vm-ingest.txt")
  flush_ms=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$VM_PORT/internal/force_flush" |
    awk '{printf "%.0f", $1 * 1000}')
  echo "   /internal/force_flush took $flush_ms ms (VictoriaMetrics acknowledges before data is on disk)"
  R[vm_flush_ms]=$flush_ms
  R[vm_rate_q]=$(awk -v n="$POINTS" -v s="$(kv seconds <"$RESULTS/vm-ingest.txt")" -v t="$flush_ms" \
    'BEGIN {printf "%.0f", n / (s + t / 1000)}')
  echo "   ingest until flushed: ${R[vm_rate_q]} points/s"

  vm_query() {  # vm_query PROMQL -> median ms; leaves the answer in $TMP/vm.json
    time_get "$TMP/vm.json" "http://127.0.0.1:$VM_PORT/api/v1/query" -G \
      --data-urlencode "query=$1" --data-urlencode "time=$END_S" --data-urlencode nocache=1
  }
  vm_value() { python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])' <"$TMP/vm.json"; }
  Q_EXACT='sum(sum_over_time(cpu_usage[24h])) / sum(count_over_time(cpu_usage[24h]))'
  Q_AVG='avg(avg_over_time(cpu_usage[24h]))'
  log "VictoriaMetrics: $Q_EXACT (exact overall average), median of $RUNS"
  R[vm_query]=$(vm_query "$Q_EXACT")
  vm_avg=$(vm_value)
  R[vm_count]=$(vm_query 'sum(count_over_time(cpu_usage[24h]))' 2>/dev/null >/dev/null; vm_value)
  check_avg VictoriaMetrics "${R[vm_count]}" "$vm_avg"
  echo "   median ${R[vm_query]} ms"
  log "VictoriaMetrics: $Q_AVG (one pass; equal to the overall average here because every host has the same count)"
  R[vm_query_avg]=$(vm_query "$Q_AVG")
  echo "   answer $(vm_value); median ${R[vm_query_avg]} ms"
  if [[ -z "${SKIP_QUERIES:-}" ]]; then
    log "VictoriaMetrics: Q1-Q6 in MetricsQL (every form), median of $RUNS"
    python3 "$ROOT/bench/queries.py" time --system vm --url "127.0.0.1:$VM_PORT" --runs "$RUNS" --out "$QDIR" ||
      echo "   WARNING: some VictoriaMetrics queries failed"
  fi
  R[vm_rss]=$(awk -v k="$(hwm_kb "$VM_PID")" 'BEGIN {printf "%.0f", k / 1024}')
  echo "   peak RSS ${R[vm_rss]} MB"
  kill -TERM "$VM_PID"
  wait "$VM_PID" 2>/dev/null || true
  R[vm_bytes]=$(du -sb "$VM_DATA" | cut -f1)
  echo "   on disk after a clean stop: ${R[vm_bytes]} bytes ($(du -sh "$VM_DATA" | cut -f1))"
fi

# ---------------------------------------------------------------------------
bpp() { awk -v b="$1" -v n="$POINTS" 'BEGIN { if (b == "") print "-"; else printf "%.2f", b / n }'; }
SUMMARY=$RESULTS/summary.md
{
  echo "| system | ingest points/s | ingest vs VM | overall average, ms (median of $RUNS) | query vs DuckDB | bytes/point | peak RSS MB |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  [[ -n "${SKIP_RM:-}" ]] ||
    echo "| RaftMetrics, protobuf batches ($CONNECTIONS conn, $WORKERS workers, $SHARDS shards) | $(fmt "${R[pb_rate]:-}") | $(ratio "${R[pb_rate]:-}" "${R[vm_rate]:-}") | $(fmt "${R[rm_query]:-}" 1) | $(ratio "${R[rm_query]:-}" "${R[db_query]:-}") | $(bpp "${R[rm_bytes]:-}") | ${R[pb_rss]:--} |"
  [[ -n "${SKIP_JSON:-}${SKIP_RM:-}" ]] ||
    echo "| RaftMetrics, $JSON_FORMAT batches ($CONNECTIONS conn, $WORKERS workers, $SHARDS shards) | $(fmt "${R[js_rate]:-}") | $(ratio "${R[js_rate]:-}" "${R[vm_rate]:-}") | - | - | $(bpp "${R[js_bytes]:-}") | ${R[js_rss]:--} |"
  [[ -n "${SKIP_DUCKDB:-}" ]] ||
    echo "| DuckDB alone, Appender, 1 file | $(fmt "${R[db_rate]:-}") | $(ratio "${R[db_rate]:-}" "${R[vm_rate]:-}") | $(fmt "${R[db_query]:-}" 1) (count+sum; with min/max too: $(fmt "${R[db_query4]:-}" 1)) | 1.00 | $(bpp "${R[db_bytes]:-}") | ${R[db_rss]:--} |"
  [[ -n "${SKIP_VM:-}" ]] ||
    echo "| VictoriaMetrics ${VM_VERSION:-}, Influx line protocol ($CONNECTIONS conn) | $(fmt "${R[vm_rate]:-}") | 1.00 | $(fmt "${R[vm_query]:-}" 1) (sum/count); $(fmt "${R[vm_query_avg]:-}" 1) (avg of avg_over_time) | $(ratio "${R[vm_query]:-}" "${R[db_query]:-}") | $(bpp "${R[vm_bytes]:-}") | ${R[vm_rss]:--} |"
  true
} >"$SUMMARY"

log "summary: $POINTS points, $HOSTS hosts ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
[[ -z "${R[db_sorted_bpp]:-}" ]] ||
  echo "DuckDB file with the same points ORDER BY series_id, ts: ${R[db_sorted_bpp]} bytes/point" >>"$SUMMARY"
echo "load average (1/5/15 min) at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$SUMMARY"
cat "$SUMMARY"
echo
goal() {  # goal TEXT OK?
  if [[ "$2" == 1 ]]; then echo "  PASS  $1"; else echo "  FAIL  $1"; fi
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "" && b != "" && a + 0 >= b + 0) ? 1 : 0 }'; }
{
  echo "goals (issue 2):"
  if [[ -n "${R[vm_rate]:-}" ]]; then
    goal "protobuf ingest >= VictoriaMetrics: $(fmt "${R[pb_rate]}") vs $(fmt "${R[vm_rate]}") points/s ($(ratio "${R[pb_rate]}" "${R[vm_rate]}")x)" \
      "$(ge "${R[pb_rate]}" "${R[vm_rate]}")"
    [[ -z "${R[pb_rate_q]:-}" || -z "${R[vm_rate_q]:-}" ]] ||
      goal "  the same until queryable (RaftMetrics + its first /analytics, VictoriaMetrics + force_flush): $(fmt "${R[pb_rate_q]}") vs $(fmt "${R[vm_rate_q]}") points/s ($(ratio "${R[pb_rate_q]}" "${R[vm_rate_q]}")x)" \
        "$(ge "${R[pb_rate_q]}" "${R[vm_rate_q]}")"
    [[ -z "${R[js_rate]:-}" ]] ||
      goal "$JSON_FORMAT ingest >= 0.5 x VictoriaMetrics: $(fmt "${R[js_rate]}") vs $(awk -v v="${R[vm_rate]}" 'BEGIN {printf "%.0f", v / 2}') points/s ($(ratio "${R[js_rate]}" "${R[vm_rate]}")x)" \
        "$(ge "${R[js_rate]}" "$(awk -v v="${R[vm_rate]}" 'BEGIN {print v / 2}')")"
    [[ -z "${R[js_rate_q]:-}" || -z "${R[vm_rate_q]:-}" ]] ||
      goal "  the same until queryable: $(fmt "${R[js_rate_q]}") vs $(awk -v v="${R[vm_rate_q]}" 'BEGIN {printf "%.0f", v / 2}') points/s ($(ratio "${R[js_rate_q]}" "${R[vm_rate_q]}")x)" \
        "$(ge "${R[js_rate_q]}" "$(awk -v v="${R[vm_rate_q]}" 'BEGIN {print v / 2}')")"
  fi
  if [[ -n "${R[db_query]:-}" && -n "${R[rm_query]:-}" ]]; then
    goal "/analytics <= 2 x DuckDB alone (SELECT count(value), sum(value)): ${R[rm_query]} ms vs ${R[db_query]} ms ($(ratio "${R[rm_query]}" "${R[db_query]}")x)" \
      "$(ge "$(awk -v d="${R[db_query]}" 'BEGIN {print 2 * d}')" "${R[rm_query]}")"
  fi
  for e in pb_errors js_errors vm_errors; do
    [[ "${R[$e]:-0}" == 0 ]] || echo "  WARNING: ${R[$e]} failed requests ($e)"
  done
} | tee -a "$SUMMARY"
if [[ -z "${SKIP_QUERIES:-}" ]]; then
  echo
  python3 "$ROOT/bench/queries.py" report --dir "$QDIR" --duckdb-log "$RESULTS/duckdb.txt" --runs "$RUNS" \
    --markdown "$SUMMARY"
fi
echo "(logs and reports in $RESULTS)"
