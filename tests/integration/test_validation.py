"""Every bad input gets its error in the seed 001 shape and stores nothing:
missing / non-string partition_key, missing / non-numeric / NaN / Inf value,
bad ISO 8601 and epoch timestamps, keys not matching ^[a-zA-Z0-9_.-]+$, malformed JSON,
NDJSON and protobuf, bodies over --max-body-bytes (413), a batch with bad points
(all or nothing, every bad field listed), bad /analytics parameters, unknown
paths (404) and wrong methods (405 with Allow)."""
import json
import unittest

import rmtest as R

MAX_BODY = 4096
VALIDATION = "VALIDATION_ERROR"
INVALID = "INVALID_REQUEST"


class ValidationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = R.Cluster(workers=2, shards=8, name="validation",
                          control_args=["--max-body-bytes", str(MAX_BODY)],
                          worker_args=["--max-body-bytes", str(MAX_BODY)]).start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def setUp(self):
        self.before = self.c.count()

    def tearDown(self):
        # Whatever a test sent, the stored data changed only by what it says it stored.
        self.assertEqual(self.c.count(), self.before + getattr(self, "stored", 0))

    def expect(self, resp, status, code=None, fields=None, subset=False):
        body = R.assert_error_shape(self, resp, status, code)
        if fields is not None:
            got = R.error_fields(body)
            if subset:
                for f in fields:
                    self.assertIn(f, got, body)
            else:
                self.assertEqual(sorted(set(got)), sorted(set(fields)), body)
            for f in body["details"]["fields"]:
                self.assertIsInstance(f.get("error"), str, f)
                self.assertTrue(f["error"], f)
        return body

    def post_raw(self, text, path="/insert", ctype="application/json", port=None):
        return R.post(port or self.c.port, path, text, {"Content-Type": ctype})

    # -- single points -----------------------------------------------------

    def test_partition_key_missing_or_not_a_string(self):
        cases = [
            {"value": 1.0},
            {"partition_key": 5, "value": 1.0},
            {"partition_key": None, "value": 1.0},
            {"partition_key": ["a"], "value": 1.0},
            {"partition_key": {"a": 1}, "value": 1.0},
            {"partition_key": "", "value": 1.0},
        ]
        for body in cases:
            with self.subTest(body=body):
                self.expect(self.c.insert(body), 400, VALIDATION, ["partition_key"])

    def test_value_missing_non_numeric_nan_inf(self):
        for value in ("12", "NaN", "nan", "Infinity", "inf", None, True, [1], {"v": 1}):
            with self.subTest(value=value):
                self.expect(self.c.insert({"partition_key": "a", "value": value}), 400, VALIDATION, ["value"])
        self.expect(self.c.insert({"partition_key": "a"}), 400, VALIDATION, ["value"])
        # Not JSON at all: NaN / Infinity tokens.
        for text in ('{"partition_key":"a","value":NaN}', '{"partition_key":"a","value":Infinity}'):
            with self.subTest(text=text):
                self.expect(self.post_raw(text), 400)

    def test_value_overflowing_to_inf_is_rejected(self):
        # 1e400 is valid JSON syntax but not a finite double.
        for text in ('{"partition_key":"a","value":1e400}', '{"partition_key":"a","value":-1e400}',
                     '[{"partition_key":"a","value":1},{"partition_key":"b","value":1e999}]'):
            with self.subTest(text=text):
                self.expect(self.post_raw(text), 400)

    def test_value_overflowing_to_inf_names_the_field(self):
        # The issue: an Inf value is a VALIDATION_ERROR listing the bad field,
        # like every other bad field (not an opaque "Malformed JSON").
        self.expect(self.post_raw('{"partition_key":"a","value":1e400}'), 400, VALIDATION, ["value"])
        self.expect(self.post_raw('[{"partition_key":"a","value":1},{"partition_key":"b","value":-1e400}]'),
                    400, VALIDATION, ["points[1].value"])

    def test_bad_timestamps(self):
        for ts in ("2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "yesterday", "2024-01-20T25:00:00Z",
                   "2024-01-20T12:61:00Z", "2024-01-20T12:00:00+25:00", "2024-01-20T12:00:00ZZ",
                   "", "2024-01-20T12:00:00.Z", -1705752000, "1705752000s", "1.7e9", True, {"t": 1}):
            with self.subTest(ts=ts):
                self.expect(self.c.insert({"partition_key": "a", "value": 1.0, "timestamp": ts}),
                            400, VALIDATION, ["timestamp"])

    def test_names_not_matching_pattern(self):
        for metric in ("bad key", "a/b", "\u00e9t\u00e9", "a*", "x" * 300):
            with self.subTest(metric=metric):
                self.expect(self.c.insert({"partition_key": "a", "value": 1.0, "metric": metric}),
                            400, VALIDATION, ["key"])
                self.expect(self.c.insert({"key": metric, "value": 1.0}, path="/metrics"),
                            400, VALIDATION, ["key"])
        self.expect(self.c.insert({"value": 1.0, "tags": {"host": "a"}}, path="/metrics"), 400, VALIDATION, ["key"])
        self.expect(self.c.insert({"key": 5, "value": 1.0}, path="/metrics"), 400, VALIDATION, ["key"])
        body = self.expect(self.c.insert({"key": "cpu", "value": 1.0, "tags": {"bad key": "v"}}, path="/metrics"),
                           400, VALIDATION)
        self.assertTrue(all(f.startswith("tags") for f in R.error_fields(body)), body)
        body = self.expect(self.c.insert({"key": "cpu", "value": 1.0, "tags": {"host": 5}}, path="/metrics"),
                           400, VALIDATION)
        self.assertTrue(all(f.startswith("tags") for f in R.error_fields(body)), body)

    def test_every_bad_field_of_one_point_is_listed(self):
        body = {"partition_key": 7, "value": "x", "timestamp": "nope", "metric": "bad metric"}
        self.expect(self.c.insert(body), 400, VALIDATION, ["partition_key", "value", "timestamp", "key"])

    # -- malformed bodies --------------------------------------------------

    def test_malformed_json(self):
        for text in ('{"partition_key": "a", "value": 1', '{partition_key: "a"}', "", "   ", "nul",
                     '{"partition_key":"a","value":1}}', "\xff\xfe"):
            with self.subTest(text=text):
                self.expect(self.post_raw(text), 400)
        for text in ('{"partition_key": "a", "value": 1', "garbage"):
            with self.subTest(text=text):
                self.expect(self.post_raw(text), 400, INVALID)
                self.expect(self.post_raw(text, path="/metrics"), 400, INVALID)

    def test_not_a_point(self):
        for text in ("[]", '{"points": []}', '{"points": 5}', "5", '"text"', "[1, 2]", "null"):
            with self.subTest(text=text):
                self.expect(self.post_raw(text), 400)

    def test_malformed_ndjson_stores_nothing(self):
        good = json.dumps({"partition_key": "nd", "value": 1.0})
        text = good + "\n" + good + "\n" + '{"partition_key": "nd", "value": ' + "\n" + good + "\n"
        self.expect(self.post_raw(text, ctype="application/x-ndjson"), 400, INVALID)
        text = good + "\n" + json.dumps({"partition_key": "nd", "value": "x"}) + "\n" + good + "\n"
        self.expect(self.post_raw(text, ctype="application/x-ndjson"), 400, VALIDATION, ["points[1].value"])

    def test_malformed_protobuf(self):
        good = R.enc_insert_request([R.enc_point("pb", 1.0)])
        for payload in (b"\xff\xff\xff\xff", good[:-3], b"\x0a\x05ab", b"\x0a\xff\xff\xff\xff\x0f", b"\x07"):
            with self.subTest(payload=payload):
                self.expect(R.post_proto(self.c.port, "/insert", payload), 400, INVALID)

    def test_invalid_protobuf_points(self):
        nan, inf = float("nan"), float("inf")
        cases = [
            (R.enc_insert_request([R.enc_point("pb", nan)]), ["value"]),
            (R.enc_insert_request([R.enc_point("pb", inf)]), ["value"]),
            (R.enc_insert_request([R.enc_point("", 1.0)]), ["partition_key"]),
            (R.enc_insert_request([R.enc_point("pb", 1.0, timestamp="not-a-time")]), ["timestamp"]),
            (R.enc_insert_request([R.enc_point("pb", 1.0, metric="bad metric")]), ["key"]),
            (R.enc_insert_request([R.enc_point("pb", 1.0), R.enc_point("pb", -inf)]), ["points[1].value"]),
            (R.enc_insert_request([], [R.enc_series("m", "pk", timestamps_us=[1, 2, 3], values=[1.0, inf, 2.0])]),
             ["series[0].values[1]"]),
            (R.enc_insert_request([], [R.enc_series("m", "pk", timestamps_us=[1, 2], values=[1.0])]),
             ["series[0].values"]),
            (R.enc_insert_request([], [R.enc_series("m", "", timestamps_us=[1], values=[1.0])]),
             ["series[0].partition_key"]),
            (R.enc_insert_request([R.enc_point("pb", 1.0), R.enc_point("", 2.0)],
                                  [R.enc_series("bad metric", "pk", timestamps_us=[1], values=[nan])]),
             ["points[1].partition_key", "series[0].key", "series[0].values[0]"]),
        ]
        for payload, fields in cases:
            with self.subTest(fields=fields):
                self.expect(R.post_proto(self.c.port, "/insert", payload), 400, VALIDATION, fields)
        # An empty request is not a point.
        self.expect(R.post_proto(self.c.port, "/insert", b""), 400)

    def test_unsupported_content_type(self):
        self.expect(self.post_raw('{"partition_key":"a","value":1}', ctype="application/xml"), 400)

    # -- size limit --------------------------------------------------------

    def test_body_over_limit_is_413(self):
        pad = "x" * MAX_BODY
        cases = [
            ("/insert", "application/json", json.dumps({"partition_key": "big", "value": 1.0, "pad": pad})),
            ("/insert", "application/json", json.dumps([{"partition_key": "big-%d" % i, "value": 1.0}
                                                        for i in range(200)])),
            ("/metrics", "application/json", json.dumps({"key": "big", "value": 1.0, "tags": {"t": pad}})),
            ("/insert", "application/x-ndjson", "\n".join(json.dumps({"partition_key": "big", "value": i})
                                                          for i in range(200))),
            ("/insert", "application/x-protobuf",
             R.enc_insert_request([R.enc_point("big-%d" % i, 1.0) for i in range(400)])),
        ]
        for path, ctype, body in cases:
            with self.subTest(path=path, ctype=ctype):
                data = body.encode() if isinstance(body, str) else body
                self.assertGreater(len(data), MAX_BODY)
                r = R.post(self.c.port, path, data, {"Content-Type": ctype})
                body = self.expect(r, 413, "PAYLOAD_TOO_LARGE")
        # The limit is the configured one: a body just under it is accepted.
        pts = [{"partition_key": "small-%d" % i, "value": 1.0} for i in range(60)]
        data = json.dumps(pts)
        self.assertLess(len(data), MAX_BODY)
        r = self.c.insert(data, {"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        self.stored = 60
        # Workers enforce their own limit too.
        r = R.post(self.c.workers["worker-1"].port, "/insert",
                   json.dumps({"partition_key": "big", "value": 1.0, "pad": pad}),
                   {"Content-Type": "application/json"})
        self.expect(r, 413, "PAYLOAD_TOO_LARGE")

    # -- batches: all or nothing -------------------------------------------

    def test_batch_with_bad_points_stores_nothing_and_lists_every_bad_field(self):
        good = {"partition_key": "batch-good", "value": 1.0}
        batch = [
            good,
            {"partition_key": "b1", "value": "x"},
            {"value": 2.0},
            {"partition_key": "b3", "value": 3.0, "timestamp": "2024-99-99"},
            good,
            {"partition_key": "b5", "value": 5.0, "metric": "no spaces allowed"},
            {"partition_key": 6, "value": 6.0},
            good,
        ]
        fields = ["points[1].value", "points[2].partition_key", "points[3].timestamp", "points[5].key",
                  "points[6].partition_key"]
        self.expect(self.c.insert(batch), 400, VALIDATION, fields)
        self.expect(self.c.insert({"points": batch}), 400, VALIDATION, fields)
        self.expect(R.post_ndjson(self.c.port, "/insert", batch), 400, VALIDATION, fields)
        # The same through a worker.
        self.expect(R.post(self.c.workers["worker-2"].port, "/insert", batch), 400, VALIDATION, fields)
        self.assertEqual(self.c.count(partition_key="batch-good"), 0)

    def test_metrics_batch_with_bad_points(self):
        batch = [{"key": "ok", "value": 1.0}, {"key": "bad key", "value": 1.0}, {"key": "ok", "value": "1"},
                 {"value": 3.0}]
        self.expect(self.c.insert(batch, path="/metrics"), 400, VALIDATION,
                    ["points[1].key", "points[2].value", "points[3].key"])

    def test_worker_insert_validates_too(self):
        port = self.c.workers["worker-1"].port
        self.expect(R.post(port, "/insert", {"value": 1.0}), 400, VALIDATION, ["partition_key"])
        self.expect(R.post(port, "/insert", '{"partition_key":', {"Content-Type": "application/json"}), 400, INVALID)
        self.expect(R.post_proto(port, "/insert", b"\xff\xff"), 400, INVALID)

    # -- /analytics parameters ---------------------------------------------

    def test_bad_analytics_params(self):
        cases = [
            ({"from": "garbage"}, ["from"]),
            ({"to": "2024-01-32T00:00:00Z"}, ["to"]),
            ({"metric": "bad metric"}, ["metric"]),
            ({"metric": "a/b"}, ["metric"]),
            ({"from": "2024-01-21T00:00:00Z", "to": "2024-01-20T00:00:00Z"}, ["from"]),
            ({"from": "x", "to": "y", "metric": "no way"}, ["from", "to", "metric"]),
        ]
        for params, fields in cases:
            with self.subTest(params=params):
                self.expect(self.c.analytics(**params), 400, VALIDATION, fields)
                r = R.get(self.c.port, "/analytics", params, headers={"Accept": "application/x-protobuf"})
                self.expect(r, 400, VALIDATION, fields)

    # -- routing errors ----------------------------------------------------

    def test_unknown_path_is_404(self):
        for method, path in (("GET", "/nope"), ("POST", "/insert/extra"), ("GET", "/analytic"),
                             ("POST", "/compute"), ("GET", "/")):
            with self.subTest(method=method, path=path):
                r = R.http_request(self.c.port, method, path, body="{}" if method == "POST" else None)
                self.expect(r, 404, "NOT_FOUND")
        r = R.get(self.c.workers["worker-1"].port, "/analytics")
        self.expect(r, 404, "NOT_FOUND")

    def test_wrong_method_is_405_with_allow(self):
        cases = [
            (self.c.port, "GET", "/insert", "POST"),
            (self.c.port, "PUT", "/insert", "POST"),
            (self.c.port, "PUT", "/metrics", "POST"),   # GET /metrics is Prometheus
            (self.c.port, "DELETE", "/metrics", "GET"),
            (self.c.port, "POST", "/analytics", "GET"),
            (self.c.port, "DELETE", "/health", "GET"),
            (self.c.workers["worker-1"].port, "GET", "/compute", "POST"),
            (self.c.workers["worker-1"].port, "GET", "/insert", "POST"),
            (self.c.workers["worker-1"].port, "POST", "/health", "GET"),
        ]
        for port, method, path, allow in cases:
            with self.subTest(method=method, path=path):
                r = R.http_request(port, method, path, body='{"partition_key":"a","value":1}'
                                   if method in ("POST", "PUT") else None)
                self.expect(r, 405, "METHOD_NOT_ALLOWED")
                allowed = [m.strip() for m in (r.header("allow") or "").split(",")]
                self.assertIn(allow, allowed, r.headers)
                self.assertNotIn(method, allowed, r.headers)


if __name__ == "__main__":
    R.main()
