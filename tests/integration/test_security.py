"""Issue 4 on real processes: bearer tokens on every endpoint of every node
(401 missing/invalid/expired with the seed's AUTH_ERROR shape), /internal/
endpoints refusing user tokens (403) and unauthenticated callers (401), per-token
rate limits with their headers under parallel clients, X-Request-Id from the
control node to the workers (JSON logs), GET /metrics, GET /stats and
`raftmetrics stats`."""
import json
import os
import subprocess
import threading
import time
import unittest

import rmtest as R

TOKEN = "tok-ops-0123456789"
OTHER = "tok-ci-9876543210"
SECRET = "cluster-secret-for-tests"
EXPIRED = "tok-expired-555"


class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = R.make_temp_dir("rm-security-")
        cls.tokens_file = os.path.join(cls.dir, "tokens.txt")
        with open(cls.tokens_file, "w") as f:
            f.write("# test tokens\nci:%s:2099-01-01T00:00:00Z\nold:%s:2020-01-01T00:00:00Z\n" % (OTHER, EXPIRED))
        env = {"AUTH_TOKENS": TOKEN, "TOKENS_FILE": cls.tokens_file, "CLUSTER_SECRET": SECRET,
               "LOG_FORMAT": "json", "LOG_LEVEL": "debug"}
        R.DEFAULT_HEADERS.update(R.bearer(TOKEN))
        # A high limit for TOKEN keeps the other tests clear of it; the rate
        # limit test uses its own cluster.
        cls.c = R.Cluster(workers=2, shards=8, name="security", env=env,
                          control_args=["--rate-limit", "100000"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()
        R.DEFAULT_HEADERS.pop("Authorization", None)

    def nodes(self):
        return [self.c.control] + list(self.c.workers.values())

    def test_every_endpoint_of_every_node_needs_a_token(self):
        cases = [(self.c.port, "GET", "/health"), (self.c.port, "POST", "/insert"),
                 (self.c.port, "POST", "/metrics"), (self.c.port, "GET", "/metrics"),
                 (self.c.port, "GET", "/analytics"), (self.c.port, "GET", "/aggregate"),
                 (self.c.port, "GET", "/stats"), (self.c.port, "POST", "/join"),
                 (self.c.port, "GET", "/no-such-endpoint")]
        for w in self.c.workers.values():
            cases += [(w.port, "GET", "/health"), (w.port, "POST", "/insert"), (w.port, "POST", "/compute"),
                      (w.port, "GET", "/metrics"), (w.port, "GET", "/stats")]
        for port, method, path in cases:
            with self.subTest(port=port, method=method, path=path):
                body = {"partition_key": "a", "value": 1} if method == "POST" else None
                r = R.http_request(port, method, path, body=body, headers={"Authorization": None})
                b = R.assert_error_shape(self, r, 401, "AUTH_ERROR")
                self.assertEqual(b["details"]["token_status"], "missing", b)
                self.assertIn("Bearer", r.header("www-authenticate") or "")
                self.assertTrue(r.header("x-request-id"))
                r = R.http_request(port, method, path, body=body, headers=R.bearer("not-a-token"))
                b = R.assert_error_shape(self, r, 401, "AUTH_ERROR")
                self.assertEqual(b["details"]["token_status"], "invalid", b)
        self.assertEqual(self.c.count(), 0)  # nothing was stored by refused requests

    def test_expired_token_says_when(self):
        r = R.get(self.c.port, "/health", headers=R.bearer(EXPIRED))
        b = R.assert_error_shape(self, r, 401, "AUTH_ERROR")
        self.assertEqual(b["message"], "Invalid or expired authentication token")
        self.assertEqual(b["details"], {"token_status": "expired", "expires_at": "2020-01-01T00:00:00Z"})

    def test_tokens_from_env_and_file_both_work_end_to_end(self):
        for token in (TOKEN, OTHER):
            r = R.post(self.c.port, "/metrics", {"key": "auth_e2e", "value": 2.0, "tags": {"host": "h"}},
                       headers=R.bearer(token))
            self.assertEqual(r.status, 200, r)
        r = R.get(self.c.port, "/aggregate", {"metric": "auth_e2e", "agg": "count,sum"}, headers=R.bearer(OTHER))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["aggregations"]["count"], 2, r.json())
        for w in self.c.workers.values():
            self.assertEqual(R.get(w.port, "/health", headers=R.bearer(OTHER)).status, 200)

    def test_internal_endpoints_take_only_the_cluster_secret(self):
        for w in self.c.workers.values():
            for path in ("/internal/write", "/internal/query", "/internal/aggregate", "/internal/map"):
                with self.subTest(worker=w.node_id, path=path):
                    r = R.post(w.port, path, b"", headers=R.bearer(TOKEN))
                    b = R.assert_error_shape(self, r, 403, "AUTH_ERROR")
                    self.assertIn("token", b["message"])
                    r = R.post(w.port, path, b"", headers={"Authorization": None})
                    b = R.assert_error_shape(self, r, 401, "AUTH_ERROR")
                    self.assertEqual(b["details"]["token_status"], "missing")
                    r = R.post(w.port, path, b"", headers=R.bearer("guess"))
                    R.assert_error_shape(self, r, 401, "AUTH_ERROR")
            # The secret gets through authentication (then the body is checked).
            r = R.post(w.port, "/internal/write", b"\xff\xff", headers=R.bearer(SECRET))
            R.assert_error_shape(self, r, 400, "INVALID_REQUEST")

    def test_request_id_travels_from_control_to_workers(self):
        rid = "trace-%d" % int(time.time() * 1000)
        r = R.get(self.c.port, "/aggregate", {"metric": "anything"}, headers={"X-Request-Id": rid})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("x-request-id"), rid)
        generated = R.get(self.c.port, "/health").header("x-request-id")
        self.assertRegex(generated, r"^[0-9a-f]{16}$")

        def logged_everywhere():
            for n in self.nodes():
                with open(n.log_path, "rb") as f:
                    lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if l.startswith("{")]
                entries = [json.loads(l) for l in lines]
                if not any(e.get("request_id") == rid for e in entries):
                    return False
            return True
        R.wait_until(logged_everywhere, 5.0, what="request id %s in every node's JSON log" % rid)
        # Every JSON line parses and has the fields; no token or secret appears in any log.
        for n in self.nodes():
            with open(n.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if line.startswith("{"):
                    e = json.loads(line)
                    for key in ("ts", "level", "msg", "node"):
                        self.assertIn(key, e, line)
            for secret in (TOKEN, OTHER, SECRET, EXPIRED):
                self.assertNotIn(secret, text, "%s leaked into %s" % (secret, n.log_path))

    def test_prometheus_metrics_on_every_node(self):
        R.post(self.c.port, "/insert", [{"partition_key": "m-%d" % i, "value": i} for i in range(10)])
        R.get(self.c.port, "/aggregate", {"metric": "insert"})
        r = R.get(self.c.port, "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertIn("text/plain", r.header("content-type"))
        text = r.body.decode()
        for series in ('raftmetrics_http_requests_total{endpoint="/insert",method="POST",status="200"}',
                       "raftmetrics_http_request_duration_seconds_bucket",
                       "raftmetrics_points_inserted_total",
                       'raftmetrics_queries_total{endpoint="/aggregate",outcome="ok"}',
                       "raftmetrics_query_duration_seconds_count",
                       'raftmetrics_worker_up{worker="worker-1"',
                       "raftmetrics_shard_leader{shard=",
                       "raftmetrics_auth_failures_total",
                       "raftmetrics_uptime_seconds"):
            self.assertIn(series, text)
        for line in text.splitlines():
            if line and not line.startswith("#"):
                self.assertTrue(line.startswith("raftmetrics_"), line)
                float(line.rsplit(" ", 1)[1].replace("+Inf", "inf"))
        stored = 0
        for w in self.c.workers.values():
            wt = R.get(w.port, "/metrics").body.decode()
            self.assertIn("raftmetrics_storage_bytes{shard=", wt)
            self.assertIn('raftmetrics_shard_leader{shard="', wt)
            for line in wt.splitlines():
                if line.startswith("raftmetrics_shard_points{"):
                    stored += float(line.rsplit(" ", 1)[1])
        self.assertEqual(stored, self.c.count())

    def test_stats_on_every_node_and_the_cli_table(self):
        R.post(self.c.port, "/insert", [{"partition_key": "s-%d" % i, "value": i} for i in range(20)])
        total = self.c.count()
        s = R.get(self.c.port, "/stats").json()
        for key in ("requests_received", "requests_accepted", "requests_completed", "requests_failed",
                    "avg_completion_ms", "shards", "workers"):
            self.assertIn(key, s)
        self.assertGreaterEqual(s["requests_received"], s["requests_accepted"])
        self.assertGreaterEqual(s["requests_accepted"], s["requests_completed"] + s["requests_failed"] - 1)
        per_shard = 0
        for w in self.c.workers.values():
            ws = R.get(w.port, "/stats").json()
            self.assertEqual(ws["role"], "worker")
            per_shard += sum(sh["points"] for sh in ws["shards"])
        self.assertEqual(per_shard, total)
        out = subprocess.run([R.BINARY, "stats", "--control", self.c.control.address, "--token", TOKEN],
                             capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        table = out.stdout.decode()
        for node in ("control-1", "worker-1", "worker-2"):
            self.assertIn(node, table)
        self.assertIn("RECEIVED", table)
        self.assertIn("SHARD", table)
        bad = subprocess.run([R.BINARY, "stats", "--control", self.c.control.address, "--token", "wrong"],
                             capture_output=True, timeout=30)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("401", bad.stderr.decode())


class RateLimitTest(unittest.TestCase):
    LIMIT = 60  # per minute: one request back per second

    @classmethod
    def setUpClass(cls):
        env = {"AUTH_TOKENS": "%s,%s" % (TOKEN, OTHER), "CLUSTER_SECRET": SECRET}
        cls.c = R.Cluster(workers=1, shards=4, name="ratelimit", env=env,
                          control_args=["--rate-limit", str(cls.LIMIT)])
        R.DEFAULT_HEADERS.update(R.bearer("cluster-secret-for-tests"))  # readiness checks as a peer
        cls.c.start()
        R.DEFAULT_HEADERS.pop("Authorization", None)

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def test_limit_holds_under_parallel_clients(self):
        results = []
        lock = threading.Lock()

        def client():
            for _ in range(20):
                r = R.get(self.c.port, "/health", headers=R.bearer(TOKEN))
                with lock:
                    results.append(r)
        started = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.monotonic() - started
        ok = [r for r in results if r.status == 200]
        limited = [r for r in results if r.status == 429]
        self.assertEqual(len(ok) + len(limited), 160, [r for r in results if r.status not in (200, 429)][:3])
        # The bucket holds LIMIT and refills one per second while the test runs.
        self.assertGreaterEqual(len(ok), self.LIMIT)
        self.assertLessEqual(len(ok), self.LIMIT + int(elapsed) + 1, "elapsed %.1fs" % elapsed)
        b = R.assert_error_shape(self, limited[0], 429, "RATE_LIMIT_EXCEEDED")
        self.assertEqual(b["message"], "Too many requests")
        self.assertEqual(b["details"]["limit"], self.LIMIT)
        self.assertEqual(b["details"]["window"], "1m")
        self.assertRegex(b["details"]["reset_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        retry = int(limited[0].header("retry-after"))
        self.assertTrue(1 <= retry <= 2, retry)
        for r in results:
            self.assertEqual(r.header("x-ratelimit-limit"), str(self.LIMIT))
            self.assertIsNotNone(r.header("x-ratelimit-remaining"))
            self.assertGreater(int(r.header("x-ratelimit-reset")), time.time() - 5)
        # Another token has its own bucket.
        self.assertEqual(R.get(self.c.port, "/health", headers=R.bearer(OTHER)).status, 200)
        # Workers default to 5000 per minute.
        w = list(self.c.workers.values())[0]
        self.assertEqual(R.get(w.port, "/health", headers=R.bearer(TOKEN)).header("x-ratelimit-limit"), "5000")

    def test_many_unknown_tokens_use_no_memory(self):
        def rss_kb():
            with open("/proc/%d/status" % self.c.control.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        def buckets():
            text = R.get(self.c.port, "/metrics", headers=R.bearer(SECRET)).body.decode()
            for line in text.splitlines():
                if line.startswith("raftmetrics_rate_limit_buckets "):
                    return float(line.split()[1])
            raise AssertionError("no raftmetrics_rate_limit_buckets in /metrics")
        held = buckets()
        before = rss_kb()
        for i in range(3000):
            r = R.get(self.c.port, "/health", headers=R.bearer("random-%d-%s" % (i, "x" * 200)))
            self.assertEqual(r.status, 401)
        # No bucket for a token that is not valid, however many are tried.
        self.assertEqual(buckets(), held)
        self.assertLessEqual(held, 2)
        # Under AddressSanitizer freed memory sits in its quarantine: RSS says nothing there.
        if "ASAN_OPTIONS" not in os.environ:
            self.assertLess(rss_kb() - before, 20 * 1024)
        self.assertEqual(R.get(self.c.port, "/health", headers=R.bearer(SECRET)).status, 200)


if __name__ == "__main__":
    R.main()
