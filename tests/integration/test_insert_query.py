"""Insert and query through the control node: every body format (single JSON,
JSON array, {"points": [...]}, NDJSON, protobuf single and batch with Point and
SeriesPoints), seed 001 /metrics with tags, timestamps with and without zones
(no zone = UTC, even with the nodes' TZ set elsewhere), inclusive from/to,
metric and partition_key filters, the empty answer, and protobuf /analytics."""
import calendar
import json
import time
import unittest

import rmtest as R

T0 = "2024-01-20T12:00:00Z"


def us(iso):
    """ISO 8601 with a Z zone -> micros since the epoch (for protobuf timestamps_us)."""
    base, _, frac = iso.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    frac_us = int((frac + "000000")[:6]) if frac else 0
    return int(secs) * 1000000 + frac_us


class InsertQueryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A zone far from UTC: a timestamp without a zone must still be read as UTC.
        cls.c = R.Cluster(workers=2, shards=8, name="insert", env={"TZ": "Asia/Tokyo"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def ok(self, resp):
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        self.assertIs(body.get("success"), True, body)
        return body

    def query(self, **params):
        return self.c.analytics_ok(**params)

    def assert_agg(self, params, count, average):
        a = self.query(**params)
        self.assertEqual(a["count"], count, (params, a))
        if average is None:
            self.assertIsNone(a["average"], (params, a))
        else:
            self.assertTrue(R.close_to(a["average"], average), (params, a, average))
        self.assertIs(a["is_partial"], False, a)
        self.assertEqual(a["missing_shards"], [], a)
        self.assertEqual(a["total_nodes"], 2, a)
        self.assertEqual(a["responding_nodes"], 2, a)
        return a

    # -- body formats ------------------------------------------------------

    def test_single_json_point(self):
        body = self.ok(self.c.insert({"partition_key": "user123", "value": 42.5, "metric": "single"}))
        self.assertEqual(body.get("message"), "Metric inserted successfully", body)
        self.assertIn(body.get("worker_node"), ("worker-1", "worker-2"), body)
        self.assertIsInstance(body.get("partition"), int, body)
        self.assertTrue(0 <= body["partition"] < 8, body)
        self.assertNotIn("inserted", body)
        self.assert_agg({"metric": "single"}, 1, 42.5)

    def test_seed000_body_with_metadata_and_default_metric(self):
        before = self.query(metric="default")["count"]
        self.ok(self.c.insert({"partition_key": "seed000", "value": 7.0, "timestamp": T0,
                               "metadata": {"host": "server-1", "datacenter": "us-west"}}))
        a = self.query(metric="default", partition_key="seed000")
        self.assertEqual(a["count"], 1, a)
        self.assertEqual(a["average"], 7.0, a)
        self.assertEqual(self.query(metric="default")["count"], before + 1)

    def test_json_array(self):
        pts = [{"partition_key": "arr-%d" % i, "value": float(i), "metric": "arr"} for i in range(10)]
        body = self.ok(self.c.insert(pts))
        self.assertEqual(body.get("inserted"), 10, body)
        self.assertEqual(body.get("message"), "Metrics inserted successfully", body)
        self.assert_agg({"metric": "arr"}, 10, 4.5)

    def test_points_object(self):
        pts = [{"partition_key": "obj-%d" % i, "value": 2.0 * i, "metric": "obj"} for i in range(7)]
        body = self.ok(self.c.insert({"points": pts}))
        self.assertEqual(body.get("inserted"), 7, body)
        self.assert_agg({"metric": "obj"}, 7, 6.0)

    def test_ndjson(self):
        pts = [{"partition_key": "nd-%d" % i, "value": 1.0 + i, "metric": "nd", "timestamp": T0}
               for i in range(9)]
        body = self.ok(R.post_ndjson(self.c.port, "/insert", pts))
        self.assertEqual(body.get("inserted"), 9, body)
        self.assert_agg({"metric": "nd"}, 9, 5.0)

    def test_ndjson_crlf_and_blank_lines(self):
        lines = [json.dumps({"partition_key": "crlf-%d" % i, "value": 3.0, "metric": "crlf"}) for i in range(4)]
        body = "\r\n".join(lines[:2]) + "\r\n\r\n\n" + "\r\n".join(lines[2:])  # no final newline
        r = R.post(self.c.port, "/insert", body, {"Content-Type": "application/x-ndjson"})
        self.assertEqual(self.ok(r).get("inserted"), 4)
        self.assert_agg({"metric": "crlf"}, 4, 3.0)

    def test_protobuf_single_point(self):
        payload = R.enc_insert_request([R.enc_point("pb-single", 3.25, timestamp=T0, metric="pbs")])
        # Protobuf in, protobuf out.
        r = R.post_proto(self.c.port, "/insert", payload, accept_proto=True)
        self.assertEqual(r.status, 200, r)
        self.assertIn("application/x-protobuf", r.header("content-type"))
        out = R.dec_insert_response(r.body)
        self.assertTrue(out["success"], out)
        self.assertIn(out["worker_node"], ("worker-1", "worker-2"), out)
        self.assertTrue(0 <= out["partition"] < 8, out)
        self.assertEqual(out["inserted"], 1, out)
        # Protobuf in, JSON out; the same key lands on the same partition.
        r2 = R.post_proto(self.c.port, "/insert",
                          R.enc_insert_request([R.enc_point("pb-single", 4.75, timestamp_us=us(T0), metric="pbs")]))
        body = self.ok(r2)
        self.assertEqual(body["partition"], out["partition"])
        self.assertEqual(body["worker_node"], out["worker_node"])
        self.assert_agg({"metric": "pbs"}, 2, 4.0)

    def test_protobuf_batch_points_and_series(self):
        ts = [us("2024-01-20T10:00:00Z") + i * 1000000 for i in range(100)]
        vals = [float(i % 10) for i in range(100)]
        series = [
            R.enc_series(metric="pbb", partition_key="series-a", tags={"host": "h1", "datacenter": "dc1"},
                         timestamps_us=ts, values=vals),
            R.enc_series(metric="pbb", partition_key="series-b", timestamps_us=ts[:50], values=[100.0] * 50),
        ]
        points = [R.enc_point("pt-%d" % i, 10.0 * i, metric="pbb", timestamp=T0, tags={"host": "h%d" % i})
                  for i in range(5)]
        payload = R.enc_insert_request(points, series)
        r = R.post_proto(self.c.port, "/insert", payload, accept_proto=True)
        self.assertEqual(r.status, 200, r)
        out = R.dec_insert_response(r.body)
        self.assertTrue(out["success"], out)
        self.assertEqual(out["inserted"], 155, out)
        self.assertEqual(out["partition"], -1, out)
        total = sum(vals) + 50 * 100.0 + sum(10.0 * i for i in range(5))
        self.assert_agg({"metric": "pbb"}, 155, total / 155)
        self.assert_agg({"metric": "pbb", "partition_key": "series-a"}, 100, sum(vals) / 100)
        # Columnar timestamps are honoured: the first 10 seconds of series-a.
        self.assert_agg({"metric": "pbb", "partition_key": "series-a", "from": "2024-01-20T10:00:00Z",
                         "to": "2024-01-20T10:00:09Z"}, 10, 4.5)
        # A batch in JSON answers JSON with "inserted".
        r = R.post_proto(self.c.port, "/insert", R.enc_insert_request(
            [], [R.enc_series(metric="pbb2", partition_key="s", timestamps_us=[0, 0], values=[1.0, 2.0])]))
        self.assertEqual(self.ok(r).get("inserted"), 2)
        # timestamps_us 0 means "time of receipt".
        now = time.time()
        self.assert_agg({"metric": "pbb2", "from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 120)),
                         "to": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 120))}, 2, 1.5)

    # -- /metrics (seed 001) -----------------------------------------------

    def test_metrics_endpoint_with_tags(self):
        m1 = {"key": "cpu_usage", "value": 75.5, "timestamp": "2024-01-20T15:30:00Z",
              "tags": {"host": "server-1", "datacenter": "us-west"}}
        b1 = self.ok(self.c.insert(m1, path="/metrics"))
        self.assertEqual(b1.get("message"), "Metric inserted successfully")
        self.assertIn(b1.get("worker_node"), ("worker-1", "worker-2"), b1)
        # Same series, tags in another order: same partition (series = metric + sorted tags).
        body = '{"tags":{"datacenter":"us-west","host":"server-1"},"value":24.5,' \
               '"timestamp":"2024-01-20T15:31:00Z","key":"cpu_usage"}'
        b2 = self.ok(R.post(self.c.port, "/metrics", body, {"Content-Type": "application/json"}))
        self.assertEqual((b2["worker_node"], b2["partition"]), (b1["worker_node"], b1["partition"]))
        # The same series as protobuf: same partition again.
        r = R.post_proto(self.c.port, "/metrics", R.enc_insert_request([R.enc_point(
            "", 50.0, timestamp="2024-01-20T15:32:00Z", metric="cpu_usage",
            tags={"host": "server-1", "datacenter": "us-west"})]), accept_proto=True)
        self.assertEqual(r.status, 200, r)
        pb = R.dec_insert_response(r.body)
        self.assertEqual((pb["worker_node"], pb["partition"]), (b1["worker_node"], b1["partition"]))
        # A batch of other series.
        batch = [{"key": "cpu_usage", "value": float(v), "timestamp": "2024-01-20T16:00:00Z",
                  "tags": {"host": "server-%d" % v, "datacenter": "us-east"}} for v in range(2, 6)]
        self.assertEqual(self.ok(self.c.insert(batch, path="/metrics")).get("inserted"), 4)
        self.assert_agg({"metric": "cpu_usage"}, 7, (75.5 + 24.5 + 50 + 2 + 3 + 4 + 5) / 7)
        self.assert_agg({"metric": "cpu_usage", "to": "2024-01-20T15:31:00Z"}, 2, 50.0)
        # The tags were stored: worker /compute can group by them.
        groups = {}
        for wid in self.c.workers:
            out = self.c.compute(wid, {"metric": "cpu_usage", "aggregations": ["count"],
                                       "group_by": ["datacenter"]})
            for g, agg in out.get("groups", {}).items():
                groups[g] = groups.get(g, 0) + agg["count"]
        self.assertEqual(groups, {"us-west": 3, "us-east": 4})

    # -- timestamps and filters --------------------------------------------

    def test_timestamps_zones_and_inclusive_range(self):
        pts = [
            ("A", 10.0, "2024-01-20T12:00:00Z"),
            ("B", 20.0, "2024-01-20T14:00:00+02:00"),      # 12:00:00Z
            ("C", 40.0, "2024-01-20T13:00:00"),            # no zone: UTC, 13:00:00Z
            ("D", 80.0, "2024-01-20T13:00:00.5-01:30"),    # 14:30:00.5Z
            ("E", 160.0, "2024-01-20T14:30:00.500001Z"),
        ]
        for key, value, ts in pts:
            self.ok(self.c.insert({"partition_key": "ts-" + key, "value": value, "timestamp": ts,
                                   "metric": "tsm"}))
        m = {"metric": "tsm"}
        self.assert_agg(dict(m), 5, 62.0)
        self.assert_agg(dict(m, **{"from": "2024-01-20T12:00:00Z", "to": "2024-01-20T12:00:00Z"}), 2, 15.0)
        # No zone read as UTC (the nodes run with TZ=Asia/Tokyo).
        self.assert_agg(dict(m, **{"from": "2024-01-20T13:00:00Z", "to": "2024-01-20T13:00:00Z"}), 1, 40.0)
        self.assert_agg(dict(m, **{"from": "2024-01-20T13:00:00", "to": "2024-01-20T13:00:00"}), 1, 40.0)
        # Both ends inclusive.
        self.assert_agg(dict(m, **{"from": "2024-01-20T12:00:00Z", "to": "2024-01-20T13:00:00Z"}), 3, 70.0 / 3)
        self.assert_agg(dict(m, **{"from": "2024-01-20T12:00:00.000001Z"}), 3, 280.0 / 3)
        self.assert_agg(dict(m, **{"to": "2024-01-20T14:30:00.5Z"}), 4, 37.5)
        self.assert_agg(dict(m, **{"from": "2024-01-20T15:30:00+01:00", "to": "2024-01-20T14:30:00.5Z"}), 1, 80.0)
        self.assert_agg(dict(m, **{"from": "2024-01-20T21:00:00+09:00", "to": "2024-01-20T12:00:00Z"}), 2, 15.0)
        self.assert_agg(dict(m, **{"from": "2024-01-20T14:30:00.500001Z"}), 1, 160.0)
        self.assert_agg(dict(m, **{"to": "2024-01-20T11:59:59.999999Z"}), 0, None)

    def test_point_without_timestamp_is_now(self):
        self.ok(self.c.insert({"partition_key": "now-key", "value": 5.0, "metric": "nowm"}))
        now = time.time()
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        self.assert_agg({"metric": "nowm", "from": time.strftime(fmt, time.gmtime(now - 120)),
                         "to": time.strftime(fmt, time.gmtime(now + 120))}, 1, 5.0)
        self.assert_agg({"metric": "nowm", "to": time.strftime(fmt, time.gmtime(now - 3600))}, 0, None)

    def test_metric_and_partition_key_filters(self):
        pts = []
        for i in range(12):
            pts.append({"partition_key": "fk-%d" % (i % 3), "value": float(i),
                        "metric": "filt-a" if i % 2 == 0 else "filt-b"})
        self.assertEqual(self.ok(self.c.insert(pts)).get("inserted"), 12)
        self.assert_agg({"metric": "filt-a"}, 6, 5.0)            # 0,2,4,6,8,10
        self.assert_agg({"metric": "filt-b"}, 6, 6.0)            # 1,3,5,7,9,11
        self.assert_agg({"partition_key": "fk-1"}, 4, 5.5)       # 1,4,7,10
        self.assert_agg({"metric": "filt-a", "partition_key": "fk-1"}, 2, 7.0)  # 4,10
        self.assert_agg({"metric": "filt-b", "partition_key": "fk-nope"}, 0, None)

    def test_no_data_answers_null_average(self):
        a = self.assert_agg({"metric": "never-written"}, 0, None)
        self.assertIn("average", a)
        self.assertIsNone(a["average"])
        r = self.c.analytics(metric="never-written")
        self.assertIn("application/json", r.header("content-type"))
        self.assertIn(b'"average":null', r.body.replace(b" ", b""))

    def test_overall_average_without_filters(self):
        # Without parameters: every point of every metric. Compare with the workers' own sums.
        a = self.query()
        count, total = 0, 0.0
        for wid in self.c.workers:
            out = self.c.compute(wid, {"aggregations": ["count", "sum"]})
            count += out["results"]["count"]
            total += out["results"]["sum"]
        self.assertEqual(a["count"], count)
        if count:
            self.assertTrue(R.close_to(a["average"], total / count, rel=1e-9), (a, total, count))

    def test_protobuf_analytics(self):
        self.ok(self.c.insert([{"partition_key": "pa-%d" % i, "value": 0.5 * i, "metric": "pban"}
                               for i in range(8)]))
        hdr = {"Accept": "application/x-protobuf"}
        r = R.get(self.c.port, "/analytics", {"metric": "pban"}, headers=hdr)
        self.assertEqual(r.status, 200, r)
        self.assertIn("application/x-protobuf", r.header("content-type"))
        pb = R.dec_analytics_response(r.body)
        js = self.query(metric="pban")
        self.assertTrue(pb["has_average"], pb)
        self.assertEqual(pb["count"], 8)
        self.assertEqual(pb["average"], js["average"])
        self.assertTrue(R.close_to(pb["average"], 1.75))
        self.assertFalse(pb["is_partial"])
        self.assertEqual(pb["total_nodes"], 2)
        self.assertEqual(pb["responding_nodes"], 2)
        self.assertEqual(pb["missing_shards"], [])
        # No data: has_average false, count 0.
        r = R.get(self.c.port, "/analytics", {"metric": "pban-none"}, headers=hdr)
        self.assertEqual(r.status, 200, r)
        pb = R.dec_analytics_response(r.body)
        self.assertFalse(pb["has_average"], pb)
        self.assertEqual(pb["count"], 0)

    def test_health_shapes(self):
        h = self.c.health()
        self.assertEqual(h["status"], "healthy", h)
        self.assertEqual(h["worker_nodes"], {"total": 2, "healthy": 2})
        self.assertIsInstance(h["uptime"], str)
        self.assertIn("raft_status", h)
        shards = sorted(s for w in h["workers"] for s in w["shards"])
        self.assertEqual(shards, list(range(8)))
        for wid, w in self.c.workers.items():
            r = R.get(w.port, "/health")
            self.assertEqual(r.status, 200, r)
            wh = r.json()
            self.assertEqual(wh["status"], "healthy")
            st = wh["storage"]
            for k in ("total_size", "free_space"):
                self.assertIsInstance(st[k], str, st)
            for k in ("total_size_bytes", "free_space_bytes"):
                self.assertIsInstance(st[k], int, st)
            self.assertGreater(st["free_space_bytes"], 0, st)


if __name__ == "__main__":
    R.main()
