#!/usr/bin/env python3
"""Issue 3's analytics queries Q1-Q6: timing on RaftMetrics and VictoriaMetrics, and the comparison.

bench/compare.sh drives it; DuckDB alone runs the same questions in-process
(rm_duckdb_baseline --queries, SQL in bench/duckdb_queries.h).

  queries.py time   --system rm --url HOST:PORT --token T --runs 5 --out DIR [--only Q5,Q6]
  queries.py time   --system vm --url HOST:PORT --runs 5 --out DIR
  queries.py repeat --system rm --url HOST:PORT --token T --query Q5 --times 30   (load for perf)
  queries.py report --dir DIR --duckdb-log duckdb.txt [--markdown FILE]

`time` sends each query RUNS times over one keep-alive connection, measures
from sending the request to the last byte of the answer, keeps the last answer
in DIR/<system>-<Q>.json and all timings in DIR/<system>-times.json.
`report` reads those plus DuckDB's QUERIES line and DIR/duckdb-answers.json,
checks that the answers agree (DuckDB's exact SQL is the reference), prints
the table with ratios and the goal of issue 3 per query, and exits 0 even when
a goal fails (the table says so).

Time ranges. The dataset's points lie in (end - 24 h, end], end =
2024-01-01T00:00:00Z, with whole-millisecond timestamps. VictoriaMetrics'
lookbehind window `[d]` evaluated at t covers (t - d, t]; RaftMetrics' from/to
are both inclusive; so "the last d" is from = end - d + 1 ms, to = end on
RaftMetrics and `ts > end - d AND ts <= end` in SQL. Q5's hourly buckets are
RaftMetrics' tumbling [start, start + 1 h) over from = end - 24 h,
to = end - 1 ms; VictoriaMetrics' query_range evaluates at start + 1 h - 1 ms
each hour, whose (t - 1 h, t] is the same set of milliseconds.
"""
import argparse
import datetime
import http.client
import json
import math
import os
import re
import statistics
import sys
import time
import urllib.parse

END_S = 1704067200  # 2024-01-01T00:00:00Z, the dataset's fixed end
QUERIES = ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6"]

DESCRIPTION = {
    "Q1": "overall avg, 24 h",
    "Q2": "avg,min,max,count,p95 over the last 6 h",
    "Q3": "avg,p95 by datacenter, 24 h",
    "Q4": "top 10 hosts by avg, 24 h",
    "Q5": "1 h buckets of avg over 24 h",
    "Q6": "avg of hosts web-1* in us-west,us-east, 24 h",
}

# RaftMetrics: GET /aggregate parameters.
DAY = {"from": "2023-12-31T00:00:00.001Z", "to": "2024-01-01T00:00:00Z"}
RM = {
    "Q1": dict(DAY, agg="avg"),
    "Q2": {"from": "2023-12-31T18:00:00.001Z", "to": "2024-01-01T00:00:00Z", "agg": "avg,min,max,count,p95"},
    "Q3": dict(DAY, agg="avg,p95", group_by="datacenter"),
    "Q4": dict(DAY, agg="avg", group_by="host", order_by="avg:desc", limit="10"),
    "Q5": {"from": "2023-12-31T00:00:00Z", "to": "2023-12-31T23:59:59.999Z", "window": "1h", "agg": "avg"},
    "Q6": dict(DAY, agg="avg", hosts="web-1*", datacenters="us-west,us-east"),
}


def _exact_avg(sel, rng, by=""):
    by = f" by ({by})" if by else ""
    return f"sum{by}(sum_over_time({sel}[{rng}])) / sum{by}(count_over_time({sel}[{rng}]))"


Q6_SEL = 'cpu_usage{host=~"web-1.*",datacenter=~"us-west|us-east"}'
# One pass over the points for both the sum and the count; the average is their
# quotient, computed by the client.
def _sum_count(sel, rng, by=""):
    return f'sum(aggr_over_time(("sum_over_time", "count_over_time"), {sel}[{rng}])) by ({by + ", " if by else ""}rollup)'


P95_6H = 'label_set(histogram_quantile(0.95, sum(histogram_over_time(cpu_usage[6h])) by (vmrange)), "agg", "p95")'
P95_DC = ('label_set(histogram_quantile(0.95, sum(histogram_over_time(cpu_usage[24h])) by (datacenter, vmrange)), '
          '"agg", "p95")')
MIN_MAX_6H = ('label_set(min(min_over_time(cpu_usage[6h])), "agg", "min"), '
              'label_set(max(max_over_time(cpu_usage[6h])), "agg", "max")')
Q5_RANGE = {"start": f"{END_S - 23 * 3600 - 0.001:.3f}", "end": f"{END_S - 0.001:.3f}", "step": "3600"}
# VictoriaMetrics: MetricsQL per query, in one or more forms (name -> (endpoint,
# params)). "exact" is the straightforward equivalent. "aggr" gets the sum and
# the count from one aggr_over_time pass (series labelled rollup=...) and divides
# on the client. "avg-of-avg" averages the per-series averages, which equals the
# overall average only when every series has as many points in the window as
# every other (true for Q1 and Q6 on this dataset). report picks the fastest form
# whose answer agrees with DuckDB. p95: VictoriaMetrics has no percentile over
# the union of several series' points except through its log-bucketed
# histogram_over_time (18 buckets per decade), so p95 is histogram_quantile's.
VM = {
    "Q1": {
        "exact": ("query", {"query": _exact_avg("cpu_usage", "24h")}),
        "aggr": ("query", {"query": _sum_count("cpu_usage", "24h")}),
        "avg-of-avg": ("query", {"query": "avg(avg_over_time(cpu_usage[24h]))"}),
    },
    "Q2": {
        "exact": ("query", {"query": f'union(label_set({_exact_avg("cpu_usage", "6h")}, "agg", "avg"), '
                            f'{MIN_MAX_6H}, label_set(sum(count_over_time(cpu_usage[6h])), "agg", "count"), '
                            f"{P95_6H})"}),
        "aggr": ("query", {"query": f'union({_sum_count("cpu_usage", "6h")}, {MIN_MAX_6H}, {P95_6H})'}),
    },
    "Q3": {
        "exact": ("query", {"query": f'union(label_set({_exact_avg("cpu_usage", "24h", "datacenter")}, "agg", "avg"), '
                            f"{P95_DC})"}),
        "aggr": ("query", {"query": f'union({_sum_count("cpu_usage", "24h", "datacenter")}, {P95_DC})'}),
    },
    "Q4": {
        "exact": ("query", {"query": "topk(10, avg_over_time(cpu_usage[24h]))"}),
    },
    "Q5": {
        "exact": ("query_range", dict(Q5_RANGE, query=_exact_avg("cpu_usage", "1h"))),
        "aggr": ("query_range", dict(Q5_RANGE, query=_sum_count("cpu_usage", "1h"))),
    },
    "Q6": {
        "exact": ("query", {"query": _exact_avg(Q6_SEL, "24h")}),
        "aggr": ("query", {"query": _sum_count(Q6_SEL, "24h")}),
        "avg-of-avg": ("query", {"query": f"avg(avg_over_time({Q6_SEL}[24h]))"}),
    },
}


def vm_request(form):
    endpoint, params = form
    params = dict(params, nocache="1")
    if endpoint == "query":
        params["time"] = str(END_S)
    return f"/api/v1/{endpoint}?" + urllib.parse.urlencode(params)


def rm_request(q):
    return "/aggregate?" + urllib.parse.urlencode(dict(RM[q], metric="cpu_usage"), safe=":,*")


def requests_for(system, only):
    """[(label, path)] where label is Q or Q:form."""
    out = []
    for q in only:
        if system == "rm":
            out.append((q, rm_request(q)))
        else:
            for name, form in VM[q].items():
                out.append((q if name == "exact" else f"{q}:{name}", vm_request(form)))
    return out


class Client:
    def __init__(self, url, token=None):
        host, port = url.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path):
        """(ms, status, body): from sending the request to the last byte read."""
        t0 = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        ms = (time.perf_counter() - t0) * 1000
        if resp.will_close:
            self.conn.close()
        return ms, resp.status, body


def cmd_time(args):
    os.makedirs(args.out, exist_ok=True)
    client = Client(args.url, args.token)
    only = args.only.split(",") if args.only else QUERIES
    times_path = os.path.join(args.out, f"{args.system}-times.json")
    times = {}
    if os.path.exists(times_path):
        with open(times_path) as f:
            times = json.load(f)
    failed = False
    for label, path in requests_for(args.system, only):
        runs = []
        for _ in range(args.runs):
            ms, status, body = client.get(path)
            runs.append(round(ms, 2))
        if status != 200:
            print(f"   ERROR {args.system} {label}: HTTP {status}: {body[:300]!r}", file=sys.stderr)
            failed = True
        with open(os.path.join(args.out, f"{args.system}-{label.replace(':', '-')}.json"), "wb") as f:
            f.write(body)
        times[label] = runs
        print(f"   {label:12s} median {statistics.median(runs):8.2f} ms  runs {' '.join(f'{x:.2f}' for x in runs)}")
        print(f"   {'':12s} GET {path}")
    with open(times_path, "w") as f:
        json.dump(times, f, indent=1)
    return 1 if failed else 0


def cmd_repeat(args):
    client = Client(args.url, args.token)
    path = rm_request(args.query) if args.system == "rm" else vm_request(VM[args.query]["exact"])
    total = 0.0
    for _ in range(args.times):
        ms, status, _ = client.get(path)
        total += ms
        if status != 200:
            print(f"   ERROR HTTP {status}", file=sys.stderr)
            return 1
    print(f"   {args.query}: {args.times} requests, {total / args.times:.1f} ms each on average")
    return 0


# --- answers, normalised to the shape of duckdb-answers.json -----------------

def iso_us(s):
    dt = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return round(dt.timestamp() * 1_000_000)


def rm_answer(q, body):
    if q in ("Q1", "Q2", "Q6"):
        out = dict(body["aggregations"])
        if "count" not in out and "by_datacenter" in body:  # the default by_datacenter carries counts
            out["count"] = sum(v["count"] for v in body["by_datacenter"].values())
        return out
    if q == "Q3":
        return body["by_datacenter"]
    if q == "Q4":
        return [[g["key"]["host"], g["aggregations"]["avg"]] for g in body["groups"]]
    if q == "Q5":
        return [[iso_us(s["start"]), s["aggregations"]["avg"]] for s in body["series"]]
    raise ValueError(q)


def _vm_named(metric):
    """The aggregation a VictoriaMetrics result series carries: its agg label, else its rollup."""
    rollup = {"sum_over_time": "_sum", "count_over_time": "count"}.get(metric.get("rollup"))
    return rollup or metric.get("agg") or "avg"


def _vm_finish(values):
    if "avg" not in values and "_sum" in values and values.get("count"):
        values["avg"] = values["_sum"] / values["count"]
    values.pop("_sum", None)
    return values


def vm_answer(q, body):
    result = body["data"]["result"]
    if q == "Q4":
        return sorted(([r["metric"]["host"], float(r["value"][1])] for r in result), key=lambda x: -x[1])
    if q == "Q5":  # evaluated at start + 1 h - 1 ms
        by_t = {}
        for r in result:
            for t, v in r["values"]:
                by_t.setdefault(round((float(t) + 0.001 - 3600) * 1_000_000), {})[_vm_named(r["metric"])] = float(v)
        return [[t, _vm_finish(v)["avg"]] for t, v in sorted(by_t.items())]
    groups = {}
    for r in result:
        groups.setdefault(r["metric"].get("datacenter", ""), {})[_vm_named(r["metric"])] = float(r["value"][1])
    groups = {k: _vm_finish(v) for k, v in groups.items()}
    return groups if q == "Q3" else groups.get("", {})


def close(a, b, rel):
    return a is not None and b is not None and abs(a - b) <= rel * max(abs(b), 1e-300)


RM_P95_TOLERANCE = 0.0025  # QuantileSketch::kRelativeAccuracy
VM_P95_TOLERANCE = 0.01    # histogram_quantile over 13.6%-wide log buckets states no bound; 1% to compare


def check(q, got, ref, p95_tol=RM_P95_TOLERANCE):
    """Differences between one system's answer and DuckDB's, as readable strings."""
    bad = []

    def field(where, name, g, r):
        if name not in g:
            return
        tol = p95_tol if name.startswith("p") and name != "count" else 1e-9
        if not close(float(g[name]), float(r[name]), tol):
            pct = (float(g[name]) - float(r[name])) / float(r[name]) * 100 if float(r[name]) else math.inf
            bad.append(f"{where}{name}={g[name]:.10g} vs {r[name]:.10g} ({pct:+.3f}%, "
                       f"allowed {f'{tol * 100:g}%' if tol != 1e-9 else '1e-9 relative'})")

    if q in ("Q1", "Q2", "Q6"):
        for name in ("avg", "min", "max", "count", "p95"):
            if name in ref:
                field("", name, got, ref)
    elif q == "Q3":
        if sorted(got) != sorted(ref):
            bad.append(f"datacenters {sorted(got)} vs {sorted(ref)}")
        for dc in ref:
            for name in ("avg", "p95"):
                if dc in got:
                    field(f"{dc}.", name, got[dc], ref[dc])
    elif q == "Q4":
        g, r = dict(got), dict(ref)
        if set(g) != set(r):
            bad.append(f"top-10 host sets differ: only here {sorted(set(g) - set(r))}, "
                       f"only in DuckDB {sorted(set(r) - set(g))}")
        elif [h for h, _ in got] != [h for h, _ in ref]:
            bad.append("same hosts, different order")
        for h in set(g) & set(r):
            if not close(g[h], r[h], 1e-9):
                bad.append(f"{h} avg {g[h]:.10g} vs {r[h]:.10g}")
    elif q == "Q5":
        if len(got) != len(ref):
            bad.append(f"{len(got)} buckets vs {len(ref)}")
        for (gs, gv), (rs, rv, *_) in zip(got, ref):
            if gs != rs:
                bad.append(f"bucket start {gs} vs {rs}")
                break
            if not close(gv, rv, 1e-9):
                bad.append(f"bucket {datetime.datetime.utcfromtimestamp(rs / 1e6):%H:%M} avg {gv:.10g} vs {rv:.10g}")
    return bad


# --- report -----------------------------------------------------------------

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def duckdb_times(log_path):
    """{Q: (median, min, max)} from the QUERIES line of rm_duckdb_baseline's output."""
    out = {}
    try:
        with open(log_path) as f:
            line = [l for l in f if l.startswith("QUERIES ")][-1]
    except (OSError, IndexError):
        return out
    kv = dict(m.groups() for m in re.finditer(r"(\S+)=(\S+)", line))
    for q in QUERIES:
        if f"{q}_ms" in kv:
            out[q] = (float(kv[f"{q}_ms"]), float(kv[f"{q}_min_ms"]), float(kv[f"{q}_max_ms"]))
    return out


def stats(runs):
    return (statistics.median(runs), min(runs), max(runs)) if runs else None


def fmt_ms(t):
    if t is None:
        return "–"
    med, lo, hi = t
    return f"{med:.1f} ({lo:.1f}–{hi:.1f})"


def ratio(a, b):
    return f"{a[0] / b[0]:.2f}" if a and b and b[0] > 0 else "–"


def cmd_report(args):
    d = args.dir
    ref = load(os.path.join(d, "duckdb-answers.json")) or {}
    db_t = duckdb_times(args.duckdb_log) if args.duckdb_log else {}
    rm_times, vm_times = load(os.path.join(d, "rm-times.json")) or {}, load(os.path.join(d, "vm-times.json")) or {}
    warnings, rows, notes, verdicts = [], [], [], []
    for q in QUERIES:
        rm_t = stats(rm_times.get(q, []))
        # Answers and checks.
        if rm_t and q in ref:
            body = load(os.path.join(d, f"rm-{q}.json"))
            try:
                bad = check(q, rm_answer(q, body), ref[q])
                if body.get("is_partial"):
                    bad.append(f"partial answer, missing shards {body.get('missing_shards')}")
            except (KeyError, TypeError, IndexError, ValueError) as e:
                bad = [f"unreadable answer ({type(e).__name__}: {e})"]
            warnings += [f"WARNING answer mismatch {q} RaftMetrics vs DuckDB: {b}" for b in bad]
        # VictoriaMetrics: the exact form is checked against DuckDB; another
        # form counts only if it answers what the exact form answers.
        vm_t, vm_form, exact = None, None, None
        labels = sorted((k for k in vm_times if k == q or k.startswith(q + ":")), key=lambda k: ":" in k)
        for label in labels:
            t = stats(vm_times[label])
            form = label.split(":", 1)[1] if ":" in label else "exact"
            body = load(os.path.join(d, f"vm-{label.replace(':', '-')}.json"))
            try:
                answer = vm_answer(q, body)
                if form == "exact":
                    exact, bad = answer, check(q, answer, ref[q], VM_P95_TOLERANCE) if q in ref else []
                else:
                    bad = (check(q, answer, exact, VM_P95_TOLERANCE) if exact is not None
                           else ["no exact form to compare with"])
            except (KeyError, TypeError, IndexError, ValueError, ZeroDivisionError) as e:
                bad = [f"unreadable answer ({type(e).__name__}: {e})"]
            if form == "exact":
                warnings += [f"WARNING answer mismatch {q} VictoriaMetrics vs DuckDB: {b}"
                             + (" (VictoriaMetrics' p95 is histogram_quantile over histogram_over_time's"
                                " log buckets, 18 per decade)" if ".p95=" in b or b.startswith("p95=") else "")
                             for b in bad]
            else:
                notes.append(f"{q} VictoriaMetrics {form} form: {fmt_ms(t)} ms; answer "
                             f"{'the same as the exact form' if not bad else 'differs: ' + '; '.join(bad)}")
                if bad:
                    continue
            if vm_t is None or t[0] < vm_t[0]:
                vm_t, vm_form = t, form
        db = db_t.get(q)
        ok_vm = rm_t is not None and vm_t is not None and rm_t[0] < vm_t[0]
        limit = 1.5 * db[0] + 5 if db else None
        ok_db = rm_t is not None and limit is not None and rm_t[0] <= limit
        verdict = "PASS" if ok_vm and ok_db else "FAIL" if rm_t and vm_t and db else "–"
        why = [] if verdict != "FAIL" else (["not faster than VM"] if not ok_vm else []) + \
            ([f"over 1.5×DuckDB+5 = {limit:.1f} ms"] if not ok_db else [])
        verdicts.append((q, verdict, why))
        rows.append(f"| {q} {DESCRIPTION[q]} | {fmt_ms(rm_t)} | {fmt_ms(db)} | {fmt_ms(vm_t)}"
                    f"{'' if vm_form in (None, 'exact') else ' (' + vm_form + ')'} | {ratio(rm_t, vm_t)} | "
                    f"{ratio(rm_t, db)} | {verdict}{' (' + '; '.join(why) + ')' if why else ''} |")
    table = ["| query | RaftMetrics ms | DuckDB alone ms | VictoriaMetrics ms | RM / VM | RM / DuckDB | "
             "goal: < VM and ≤ 1.5×DuckDB + 5 ms |",
             "|---|---:|---:|---:|---:|---:|---|"] + rows
    out = [f"Queries Q1-Q6: median of {args.runs} (min–max), ms"] + table + [""] + notes + warnings
    if not warnings and ref:
        out.append("answers: RaftMetrics and VictoriaMetrics agree with DuckDB's exact SQL on every compared "
                   "value (averages 1e-9 relative, counts/min/max exact, p95 within 0.25% (VictoriaMetrics: 1%), "
                   "Q4's host set, Q5's buckets)")
    text = "\n".join(out)
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n" + text + "\n")
    print("goals (issue 3, per query: faster than VictoriaMetrics and within 1.5× DuckDB alone + 5 ms):")
    for q, verdict, why in verdicts:
        print(f"  {verdict:4s}  {q} {DESCRIPTION[q]}{': ' + '; '.join(why) if why else ''}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("time")
    t.add_argument("--system", choices=["rm", "vm"], required=True)
    t.add_argument("--url", required=True)
    t.add_argument("--token")
    t.add_argument("--runs", type=int, default=5)
    t.add_argument("--out", required=True)
    t.add_argument("--only", help="comma-separated subset of Q1..Q6")
    r = sub.add_parser("repeat")
    r.add_argument("--system", choices=["rm", "vm"], required=True)
    r.add_argument("--url", required=True)
    r.add_argument("--token")
    r.add_argument("--query", choices=QUERIES, required=True)
    r.add_argument("--times", type=int, default=30)
    s = sub.add_parser("report")
    s.add_argument("--dir", required=True)
    s.add_argument("--duckdb-log")
    s.add_argument("--runs", type=int, default=5)
    s.add_argument("--markdown")
    a = p.parse_args()
    return {"time": cmd_time, "repeat": cmd_repeat, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
