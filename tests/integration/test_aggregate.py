"""GET /aggregate, differentially: a random dataset (several metrics, hosts,
datacenters, time spreads, negative values, duplicates) is inserted through the
cluster, and every combination of parameters below is compared with an oracle
that holds every point in one place (exact for avg/min/max/sum/count and
exact=true percentiles, within the documented 0.25% bound for sketch percentiles).
Then with one worker stopped: the merged answer equals the oracle over the
shards that answered, and names the missing ones."""
import datetime
import itertools
import math
import random
import unittest

import rmtest as R

SHARDS = 8
BASE = 1705708800 * 1000000  # 2024-01-20T00:00:00Z in micros
HOUR = 3600 * 1000000
METRICS = ["cpu", "mem", "lat"]
DCS = ["us-west", "us-east", "eu-west"]
HOSTS = ["web-1", "web-12", "web-2", "api-1", "api-20", "db-3"]
SKETCH_ACCURACY = 0.0025  # QuantileSketch::kRelativeAccuracy


def iso(us):
    dt = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=us)
    s = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if us % 1000000:
        s += ".%06d" % (us % 1000000)
    return s + "Z"


def quantile_cont(sorted_vals, q):
    pos = q * (len(sorted_vals) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def glob_match(pattern, text):
    import fnmatch
    # fnmatch treats [ ] specially; our patterns here only use * and ?.
    return fnmatch.fnmatchcase(text, pattern)


class Oracle(object):
    def __init__(self, points):
        self.points = points  # dicts: metric, host, datacenter, env, ts, value, shard

    def select(self, p, shards=None):
        out = []
        for x in self.points:
            if x["metric"] != p["metric"] or not (p["from"] <= x["ts"] <= p["to"]):
                continue
            if shards is not None and x["shard"] not in shards:
                continue
            if "tags" in p and any(x.get(k) != v for k, v in p["tags"]):
                continue
            if "hosts" in p and not any(glob_match(h, x["host"]) for h in p["hosts"]):
                continue
            if "datacenters" in p and x["datacenter"] not in p["datacenters"]:
                continue
            out.append(x)
        return out

    @staticmethod
    def aggs(values, names):
        vals = sorted(values)
        out = {}
        for n in names:
            if n == "count":
                out[n] = len(vals)
            elif n == "sum":
                out[n] = math.fsum(vals)
            elif not vals:
                out[n] = None
            elif n == "avg":
                out[n] = math.fsum(vals) / len(vals)
            elif n == "min":
                out[n] = vals[0]
            elif n == "max":
                out[n] = vals[-1]
            else:
                out[n] = ("pct", vals, float(n[1:]) / 100.0)
        return out


class AggregateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = R.Cluster(workers=2, shards=SHARDS, name="aggregate",
                          # every shard reads whole hours from its rollup (by default only large ones do)
                          env={"ROLLUP_MIN_POINTS": "0"}).start()
        rng = random.Random(20240120)
        points = []
        series_shard = {}
        for metric in METRICS:
            for host in HOSTS:
                dc = DCS[hash(host) % len(DCS)] if False else DCS[HOSTS.index(host) % len(DCS)]
                env = "prod" if host.startswith("web") else "dev"
                n = rng.randint(40, 120)
                spread = rng.choice([2 * HOUR, 12 * HOUR, 30 * HOUR])
                for i in range(n):
                    ts = BASE + rng.randrange(0, spread // 1000000) * 1000000
                    v = round(rng.uniform(-50, 150), 3)
                    if i % 17 == 0 and points:
                        v = points[-1]["value"]  # duplicates
                    points.append({"metric": metric, "host": host, "datacenter": dc, "env": env,
                                   "ts": ts, "value": v})
        # Learn each series' shard from a single-point insert, then batch the rest.
        first = {}
        rest = []
        for p in points:
            key = (p["metric"], p["host"])
            if key not in first:
                first[key] = p
            else:
                rest.append(p)

        def body(p):
            return {"key": p["metric"], "value": p["value"], "timestamp": iso(p["ts"]),
                    "tags": {"host": p["host"], "datacenter": p["datacenter"], "env": p["env"]}}

        for key, p in first.items():
            r = cls.c.insert(body(p), path="/metrics")
            assert r.status == 200, r
            series_shard[key] = r.json()["partition"]
        for i in range(0, len(rest), 400):
            r = cls.c.insert([body(p) for p in rest[i:i + 400]], path="/metrics")
            assert r.status == 200, r
        for p in points:
            p["shard"] = series_shard[(p["metric"], p["host"])]
        cls.oracle = Oracle(points)

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    # -- comparison ---------------------------------------------------------

    def assert_aggs(self, got, expected, exact, ctx):
        for name, want in expected.items():
            have = got.get(name)
            if isinstance(want, tuple):
                _, vals, q = want
                if not vals:
                    self.assertIsNone(have, ctx)
                    continue
                exact_v = quantile_cont(vals, q)
                if exact:
                    self.assertTrue(R.close_to(have, exact_v, rel=1e-9, abs_tol=1e-9),
                                    "%s %s: %r != %r" % (ctx, name, have, exact_v))
                else:
                    # Documented bound: each neighbouring rank's estimate within
                    # SKETCH_ACCURACY of its value, so the answer within that of
                    # quantile_cont (weighted like it, for ranks across zero).
                    pos = q * (len(vals) - 1)
                    frac = pos - math.floor(pos)
                    lo = vals[int(math.floor(pos))]
                    hi = vals[min(int(math.floor(pos)) + 1, len(vals) - 1)]
                    allowed = SKETCH_ACCURACY * ((1 - frac) * abs(lo) + frac * abs(hi)) + 1e-9
                    self.assertTrue(abs(have - exact_v) <= allowed,
                                    "%s %s: %r not within %r of %r" % (ctx, name, have, allowed, exact_v))
            elif want is None:
                self.assertIsNone(have, "%s %s" % (ctx, name))
            else:
                self.assertTrue(R.close_to(have, want, rel=1e-9, abs_tol=1e-6),
                                "%s %s: %r != %r" % (ctx, name, have, want))

    def query(self, p, shards=None):
        params = {"metric": p["metric"], "from": iso(p["from"]), "to": iso(p["to"]),
                  "agg": ",".join(p["agg"])}
        if "tags" in p:
            params["tags"] = ",".join("%s:%s" % kv for kv in p["tags"])
        if "hosts" in p:
            params["hosts"] = ",".join(p["hosts"])
        if "datacenters" in p:
            params["datacenters"] = ",".join(p["datacenters"])
        for k in ("group_by", "window", "rolling", "step", "order_by", "limit", "exact"):
            if k in p:
                params[k] = p[k]
        r = R.get(self.c.port, "/aggregate", params, timeout=20)
        self.assertEqual(r.status, 200, "%s -> %r" % (params, r))
        return r.json()

    def check(self, p, shards=None):
        body = self.query(p)
        pts = self.oracle.select(p, shards)
        exact = p.get("exact") == "true"
        ctx = str(p)
        self.assert_aggs(body["aggregations"], Oracle.aggs([x["value"] for x in pts], p["agg"]), exact, ctx)
        window = {"1h": HOUR, "6h": 6 * HOUR, "30m": HOUR // 2}.get(p.get("window"))
        group_fields = p["group_by"].split(",") if "group_by" in p else []
        if group_fields:
            groups = {}
            for x in pts:
                groups.setdefault(tuple(x[f] for f in group_fields), []).append(x)
            got = {tuple(g["key"][f] for f in group_fields): g for g in body["groups"]}
            expected_keys = set(groups)
            if "limit" in p:
                first = p["agg"][0]
                desc = p.get("order_by", "value:desc").endswith("desc")

                def exact_value(k):
                    v = Oracle.aggs([x["value"] for x in groups[k]], [first])[first]
                    return quantile_cont(v[1], v[2]) if isinstance(v, tuple) else v

                ranked = sorted(groups, key=exact_value, reverse=desc)
                self.assertEqual(len(body["groups"]), min(int(p["limit"]), len(groups)), ctx)
                # The returned groups are the global top-N by the exact value (ties
                # aside; sketch percentiles may swap groups within their bound).
                sketch = first.startswith("p") and p.get("exact") != "true"
                cut = exact_value(ranked[len(body["groups"]) - 1]) if body["groups"] else None
                tol = 2 * SKETCH_ACCURACY * abs(cut) + 1e-9 if (sketch and cut is not None) else 1e-9
                for k in got:
                    v = exact_value(k)
                    self.assertTrue((v >= cut - tol) if desc else (v <= cut + tol), "%s top-N %r" % (ctx, k))
                # ... and in order.
                order = [exact_value(tuple(g["key"][f] for f in group_fields)) for g in body["groups"]]
                if not sketch:
                    self.assertEqual(order, sorted(order, reverse=desc), ctx)
                expected_keys = set(got)
            self.assertEqual(set(got), expected_keys, ctx)
            for k in expected_keys:
                self.assert_aggs(got[k]["aggregations"], Oracle.aggs([x["value"] for x in groups[k]], p["agg"]),
                                 exact, "%s group %r" % (ctx, k))
            if len(group_fields) == 1:
                self.assertEqual(set(body["by_" + group_fields[0]]), set(k[0] for k in expected_keys), ctx)
        else:
            dcs = {}
            for x in pts:
                dcs.setdefault(x["datacenter"], []).append(x["value"])
            self.assertEqual(set(body["by_datacenter"]), set(dcs), ctx)
            for dc, vals in dcs.items():
                self.assert_aggs(body["by_datacenter"][dc], Oracle.aggs(vals, ["avg", "count"]), True, ctx + dc)
        if window and not group_fields:
            expected = []
            if p.get("rolling") == "true":
                # A window ends at every t = from + k * step in [from, to] and covers
                # [t - window, t) in full, also before `from` (issue 19, item 3).
                step = {"5m": HOUR // 12, "30m": HOUR // 2, "1h": HOUR}[p["step"]]
                wide = self.oracle.select(dict(p, **{"from": p["from"] - window}), shards)
                t = p["from"]
                while t <= p["to"]:
                    vals = [x["value"] for x in wide if t - window <= x["ts"] < t]
                    if vals:
                        expected.append((iso(t - window), iso(t), vals))
                    t += step
            else:
                buckets = {}
                for x in pts:
                    buckets.setdefault(x["ts"] - x["ts"] % window, []).append(x["value"])
                for b in sorted(buckets):
                    expected.append((iso(max(b, p["from"])), iso(min(b + window, p["to"])), buckets[b]))
            got = [(s["start"], s["end"], s["aggregations"]) for s in body["series"]]
            self.assertEqual([(a, b) for a, b, _ in got], [(a, b) for a, b, _ in expected], ctx)
            for (_, _, have), (s, _, vals) in zip(got, expected):
                self.assert_aggs(have, Oracle.aggs(vals, p["agg"]), exact, "%s bucket %s" % (ctx, s))
        return body

    # -- the grid -----------------------------------------------------------

    def test_parameter_grid(self):
        ranges = [(BASE, BASE + 30 * HOUR), (BASE + 3 * HOUR, BASE + 9 * HOUR - 1)]
        filters = [{}, {"tags": [("env", "prod")]}, {"hosts": ["web-1*", "api-?"]},
                   {"datacenters": ["us-west", "eu-west"]},
                   {"hosts": ["web-*"], "datacenters": ["us-east"]}, {"tags": [("env", "x' OR 1=1 --")]}]
        shapes = [{}, {"group_by": "datacenter"}, {"group_by": "datacenter,host"},
                  {"group_by": "host", "order_by": "value:desc", "limit": "3"},
                  {"group_by": "host", "order_by": "value:asc", "limit": "2"},
                  {"window": "1h"}, {"window": "6h"}, {"window": "1h", "rolling": "true", "step": "30m"}]
        # ["avg", "sum", "count"]: the shards then skip min/max (skip_min_max).
        aggsets = [["avg", "min", "max", "sum", "count"], ["p50", "p95", "p99"], ["avg", "p95"], ["avg", "sum", "count"]]
        n = 0
        for metric, (f, t), filt, shape, aggs, exact in itertools.product(
                METRICS[:2], ranges, filters, shapes, aggsets, [False, True]):
            if exact and not any(a.startswith("p") for a in aggs):
                continue
            n += 1
            if n % 3 and metric == "mem":  # keep the grid under a few hundred queries
                continue
            p = {"metric": metric, "from": f, "to": t, "agg": aggs}
            p.update(filt)
            p.update(shape)
            if exact:
                p["exact"] = "true"
            self.check(p)

    def test_rolling_windows_read_before_from_and_keep_the_range_exact(self):
        # The dashboard: a rolling 1 h average every 5 min. The window
        # labelled from + 5m averages a whole hour, reaching before `from`; the
        # overall aggregations still cover exactly [from, to], also when `from`
        # is not a multiple of the step.
        for f in (BASE + 6 * HOUR, BASE + 6 * HOUR + 7 * 60 * 1000000 + 123):
            p = {"metric": "cpu", "from": f, "to": f + 3 * HOUR, "agg": ["avg", "count", "min", "max"],
                 "window": "1h", "rolling": "true", "step": "5m"}
            body = self.check(p)
            first = body["series"][0]
            self.assertEqual(first["start"], iso(f - HOUR), first)
            self.assertEqual(first["end"], iso(f), first)
            inside = self.oracle.select(p)
            self.assertEqual(body["aggregations"]["count"], len(inside))
        # A window is never cut at `from`: with data only before `from`, the
        # windows that reach back still answer.
        p = {"metric": "cpu", "from": BASE + 30 * HOUR, "to": BASE + 31 * HOUR, "agg": ["count"],
             "window": "6h", "rolling": "true", "step": "1h"}
        body = self.check(p)
        self.assertEqual(body["aggregations"]["count"], len(self.oracle.select(p)))
        self.assertTrue(body["series"], body)

    def test_empty_answers_say_why(self):
        def warnings(params):
            r = R.get(self.c.port, "/aggregate", params, timeout=20)
            self.assertEqual(r.status, 200, r)
            body = r.json()
            self.assertEqual(body["aggregations"]["count"], 0, body)
            self.assertEqual(len(body["warnings"]), 1, body)
            return body["warnings"][0]

        w = warnings({"metric": "cpuu", "from": iso(BASE), "to": iso(BASE + 30 * HOUR), "agg": "count"})
        self.assertIn("no series for metric cpuu", w)
        self.assertIn("did you mean cpu?", w)
        self.assertEqual(warnings({"metric": "nothing_like_it", "agg": "count"}),
                         "no series for metric nothing_like_it")
        cpu = [x["ts"] for x in self.oracle.points if x["metric"] == "cpu"]
        has = "the metric has points from %s to %s" % (iso(min(cpu)), iso(max(cpu)))
        w = warnings({"metric": "cpu", "agg": "count"})  # the default range: the last 24 h
        self.assertTrue(w.startswith("no points in the default range (last 24 h, "), w)
        self.assertTrue(w.endswith(has), w)
        w = warnings({"metric": "cpu", "from": "2023-01-01T00:00:00Z", "to": "2023-01-02T00:00:00Z", "agg": "avg,count"})
        self.assertEqual(w, "no points between 2023-01-01T00:00:00Z and 2023-01-02T00:00:00Z; " + has)
        w = warnings({"metric": "cpu", "datacenters": "nowhere", "from": iso(BASE), "to": iso(BASE + 30 * HOUR),
                      "agg": "count"})
        self.assertTrue(w.startswith("no series of metric cpu match the filters"), w)
        # An answer with points has no warnings.
        r = R.get(self.c.port, "/aggregate", {"metric": "cpu", "from": iso(BASE), "to": iso(BASE + 30 * HOUR)})
        self.assertEqual(r.json()["warnings"], [], r)

    def test_a_worker_answers_only_for_the_shards_it_holds(self):
        # Asked for every shard (a caller with a lagging map, or a replica that
        # moved away), a worker leaves out the shards it does not hold, so they
        # count as missing, never as empty (issue 20, item 3).
        held = self.c.shard_map()
        for wid, w in self.c.workers.items():
            for path, metric_field, answers in (("/internal/aggregate", 2, 2), ("/internal/query", 2, 2)):
                q = R.enc_packed_varints(1, range(SHARDS)) + R.enc_bytes(metric_field, b"cpu")
                r = R.post(w.port, path, bytes(q), {"Content-Type": "application/x-protobuf"})
                self.assertEqual(r.status, 200, r)
                got = sorted(R._varint(R.dec_fields(item), 1)
                             for _, item in R.dec_fields(r.body).get(answers, []))
                self.assertEqual(got, held[wid], "%s %s" % (wid, path))

    def test_sql_injection_is_just_a_value(self):
        body = self.query({"metric": "cpu", "from": BASE, "to": BASE + 30 * HOUR, "agg": ["count"],
                           "tags": [("env", "x' OR 1=1 --")]})
        self.assertEqual(body["aggregations"]["count"], 0)

    def test_bad_parameters_list_every_field(self):
        r = R.get(self.c.port, "/aggregate", {"metric": "cpu", "agg": "avg,bogus", "window": "7x",
                                                "from": "not-a-time", "order_by": "speed", "limit": "-2",
                                                "tags": "novalue"})
        R.assert_error_shape(self, r, 400, "VALIDATION_ERROR")
        fields = {f["field"] for f in r.json()["details"]["fields"]}
        for f in ("agg", "window", "from", "order_by", "limit", "tags"):
            self.assertIn(f, fields)
        r = R.get(self.c.port, "/aggregate", {"agg": "avg"})
        R.assert_error_shape(self, r, 400, "VALIDATION_ERROR")

    def test_partial_answer_equals_oracle_of_answering_shards(self):
        try:
            shard_map = self.c.shard_map()
            self.c.pause_worker("worker-2")
            alive = set(shard_map["worker-1"])
            p = {"metric": "cpu", "from": BASE, "to": BASE + 30 * HOUR, "agg": ["avg", "sum", "count", "p50"],
                 "exact": "true", "group_by": "datacenter"}
            body = self.check(p, shards=alive)
            self.assertTrue(body["is_partial"])
            self.assertEqual(sorted(body["missing_shards"]), sorted(shard_map["worker-2"]))
            self.assertEqual(body["responding_nodes"], 1)
            params = {"metric": "cpu", "from": iso(BASE), "to": iso(BASE + 30 * HOUR), "partial": "deny"}
            r = R.get(self.c.port, "/aggregate", params, timeout=20)
            R.assert_error_shape(self, r, 503)
            self.assertEqual(sorted(r.json()["details"]["missing_shards"]), sorted(shard_map["worker-2"]))
        finally:
            self.c.resume_worker("worker-2")


if __name__ == "__main__":
    R.main()
