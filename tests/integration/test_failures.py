"""Worker failures: kill -9 and SIGSTOP give partial answers naming exactly the
missing shards, with the average of the rest; writes to unreachable shards fail
with 503 (never a false success) and say what was stored, so a retry with the
same Idempotency-Key completes them without duplicates; after a restart the
answer is complete again and nothing acknowledged is lost; no worker -> 503."""
import threading
import time
import unittest

import rmtest as R

SHARDS = 8


class FailureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = R.Cluster(workers=2, shards=SHARDS, name="failures").start()
        cls.ledger = []  # (partition, value) of every acknowledged point
        cls.key_partition = {}
        cls.seq = 0

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def setUp(self):
        self.c.ensure_all_up()
        self.c.wait_complete(metric="fail")

    # -- helpers -----------------------------------------------------------

    def insert_point(self, key, value, metric="fail"):
        # Set-up writes retry (safely: same Idempotency-Key) across a restart's
        # hiccups; the scenarios check first-attempt behaviour themselves.
        self.__class__.seq += 1
        hdr = {"Idempotency-Key": "setup-%d" % self.seq}
        for _ in range(100):
            r = self.c.insert({"partition_key": key, "value": value, "metric": metric}, hdr)
            if r.status != 503:
                break
            time.sleep(0.02)
        self.assertEqual(r.status, 200, r)
        part = r.json()["partition"]
        self.key_partition[key] = part
        if metric == "fail":
            self.ledger.append((part, value))
        return part

    def keys_on(self, shards, n, prefix):
        """n known keys whose partition is in `shards` (probing new keys as needed)."""
        found = [k for k, p in sorted(self.key_partition.items()) if p in shards and k.startswith(prefix)]
        i = 0
        while len(found) < n and i < 500:
            k = "%s-%d" % (prefix, i)
            i += 1
            if k in self.key_partition:
                continue
            # Probe with a separate metric so the "fail" ledger stays exact.
            if self.insert_point(k, 0.0, metric="probe") in shards:
                found.append(k)
        self.assertGreaterEqual(len(found), n, "no keys found on shards %s" % shards)
        return found[:n]

    def expected(self, exclude_shards=()):
        vals = [v for p, v in self.ledger if p not in exclude_shards]
        return len(vals), (sum(vals) / len(vals) if vals else None)

    def assert_complete_and_exact(self, timeout_s=15.0, strict=False):
        """Polls until /analytics is complete and exact (nothing lost, nothing doubled).

        strict: every complete answer on the way (is_partial false) must already be
        exact; otherwise complete-but-short answers while a restarted worker is still
        opening its shards are tolerated here (test_5 checks that window)."""
        count, avg = self.expected()
        deadline = time.monotonic() + timeout_s
        seen = []
        for _ in range(2000):
            r = self.c.analytics(metric="fail")
            if r.status == 200:
                a = r.json()
                seen.append(a)
                if not a["is_partial"]:
                    self.assertEqual(a["missing_shards"], [], a)
                    self.assertEqual(a["responding_nodes"], 2, a)
                    if strict:
                        self.assertEqual(a["count"], count, "a complete answer (is_partial false) must "
                                         "count every stored point: %r (expected %d)" % (a, count))
                    if a["count"] == count:
                        self.assertTrue(R.close_to(a["average"], avg), (a, avg))
                        return a
                    self.assertLess(a["count"], count, "more points than were written: %r" % a)
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.fail("no complete and exact answer (count %d) within %.0fs: %r" % (count, timeout_s, seen[-3:]))

    def assert_partial(self, dead_shards, answered_workers=1):
        count, avg = self.expected(exclude_shards=dead_shards)
        a = self.c.analytics_ok(metric="fail")
        self.assertIs(a["is_partial"], True, a)
        self.assertEqual(a["missing_shards"], sorted(dead_shards), a)
        self.assertEqual(a["total_nodes"], 2, a)
        self.assertEqual(a["responding_nodes"], answered_workers, a)
        self.assertEqual(a["count"], count, a)
        self.assertTrue(R.close_to(a["average"], avg), (a, avg))
        return a

    # -- scenarios ---------------------------------------------------------

    def test_1_kill9_partial_answer_503s_and_idempotent_retry_after_restart(self):
        c = self.c
        for i in range(24):
            self.insert_point("k%d" % i, float(i) + 0.5)
        shard_map = c.shard_map()
        dead = shard_map["worker-2"]
        live = shard_map["worker-1"]
        self.assertTrue(dead and live, shard_map)
        self.assertTrue(any(p in dead for p, _ in self.ledger) and any(p in live for p, _ in self.ledger),
                        "the ledger must span both workers: %r" % self.ledger)
        dead_keys = self.keys_on(dead, 2, "k")
        live_keys = self.keys_on(live, 3, "k")

        # kill -9 right after the acks.
        c.kill_worker("worker-2")
        self.assert_partial(dead)
        c.wait_worker_health("worker-2", False)
        h = c.health()
        self.assertEqual(h["status"], "degraded", h)
        self.assertEqual(h["worker_nodes"], {"total": 2, "healthy": 1}, h)
        # The same through protobuf, and without a metric filter.
        r = R.get(c.port, "/analytics", {"metric": "fail"}, headers={"Accept": "application/x-protobuf"})
        pb = R.dec_analytics_response(r.body)
        self.assertTrue(pb["is_partial"], pb)
        self.assertEqual(pb["missing_shards"], dead, pb)
        self.assertEqual(pb["responding_nodes"], 1, pb)
        a = c.analytics_ok()
        self.assertTrue(a["is_partial"], a)
        self.assertEqual(a["missing_shards"], dead, a)

        # A single point for a dead shard: 503 in the error shape, nothing stored.
        r = c.insert({"partition_key": dead_keys[0], "value": 1000.0, "metric": "fail"})
        body = R.assert_error_shape(self, r, 503, "UNAVAILABLE")
        self.assertEqual(body["details"].get("stored_points"), 0, body)
        self.assertEqual([f["shard"] for f in body["details"]["failed_shards"]],
                         [self.key_partition[dead_keys[0]]], body)
        # Forwarded by the live worker: also 503.
        r = R.post(c.workers["worker-1"].port, "/insert",
                   {"partition_key": dead_keys[0], "value": 1000.0, "metric": "fail"})
        R.assert_error_shape(self, r, 503)
        self.assert_partial(dead)

        # A batch over live and dead shards: 503 saying what was stored and what failed.
        batch = [{"partition_key": k, "value": 100.0 + i, "metric": "fail"}
                 for i, k in enumerate(live_keys + dead_keys)]
        hdr = {"Idempotency-Key": "retry-me-1"}
        r = c.insert(batch, hdr)
        body = R.assert_error_shape(self, r, 503, "UNAVAILABLE")
        d = body["details"]
        self.assertEqual(d.get("stored_points"), len(live_keys), d)
        self.assertEqual(d.get("total_points"), len(batch), d)
        failed = sorted({f["shard"] for f in d["failed_shards"]})
        self.assertEqual(failed, sorted({self.key_partition[k] for k in dead_keys}), d)
        for f in d["failed_shards"]:
            self.assertEqual(f.get("worker_node"), "worker-2", f)
        self.assertEqual(sorted(d.get("stored_shards", [])), sorted({self.key_partition[k] for k in live_keys}), d)
        self.assertEqual(d.get("idempotency_key"), "retry-me-1", d)
        for i, k in enumerate(live_keys):
            self.ledger.append((self.key_partition[k], 100.0 + i))
        self.assert_partial(dead)

        # Restart: complete again, nothing lost (the kill came right after the acks).
        c.workers["worker-2"].start()
        self.assert_complete_and_exact()

        # The retry completes the batch: dead shards stored now, live ones not twice.
        for attempt in range(2):
            r = c.insert(batch, hdr)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json().get("inserted"), len(batch), r.json())
            if attempt == 0:
                for i, k in enumerate(dead_keys):
                    self.ledger.append((self.key_partition[k], 100.0 + len(live_keys) + i))
            self.assert_complete_and_exact()
        # Exact sum on the workers too.
        total = sum(c.compute(w, {"metric": "fail", "aggregations": ["sum", "count"]})["results"]["sum"]
                    for w in c.workers)
        self.assertTrue(R.close_to(total, sum(v for _, v in self.ledger)), total)

    def test_2_sigstop_slower_than_deadline_gives_partial(self):
        c = self.c
        for i in range(8):
            self.insert_point("s%d" % i, 3.0 * i)
        slow = c.shard_map()["worker-1"]
        c.pause_worker("worker-1")
        try:
            t = time.monotonic()
            a = self.assert_partial(slow)
            elapsed = time.monotonic() - t
            # Bounded by the per-query deadline (--query-timeout-ms), not by the stopped worker.
            self.assertLess(elapsed, R.QUERY_TIMEOUT_MS / 1000.0 + 2.0, (elapsed, a))
            # A write to the stopped worker's shard: 503 after the write deadline, never 200.
            key = self.keys_on(slow, 1, "s")[0]
            hdr = {"Idempotency-Key": "stopped-worker-write"}
            t = time.monotonic()
            r = c.insert({"partition_key": key, "value": 77.0, "metric": "fail"}, hdr)
            R.assert_error_shape(self, r, 503)
            self.assertLess(time.monotonic() - t, R.WRITE_TIMEOUT_MS / 1000.0 + 3.0)
        finally:
            c.resume_worker("worker-1")
        # The worker may have applied the timed-out write once it woke up; the
        # retry with the same key makes it exactly once either way.
        r = c.insert({"partition_key": key, "value": 77.0, "metric": "fail"}, hdr)
        self.assertEqual(r.status, 200, r)
        self.ledger.append((self.key_partition[key], 77.0))
        self.assert_complete_and_exact()

    def test_3_kill9_during_a_write_stream_loses_no_ack(self):
        c = self.c
        target = c.shard_map()["worker-2"]
        keys = self.keys_on(target, 3, "stream")
        acked, unacked = [], []
        stop = threading.Event()

        def writer():
            for n in range(400):
                if stop.is_set():
                    return
                batch = [{"partition_key": keys[j % 3], "value": float(n % 7 + j), "metric": "fail"}
                         for j in range(20)]
                key = "stream-%d" % n
                try:
                    r = c.insert(batch, {"Idempotency-Key": key})
                    ok = r.status == 200
                except OSError:
                    ok = False
                (acked if ok else unacked).append((key, batch))
                if not ok:
                    return

        t = threading.Thread(target=writer)
        t.start()
        try:
            R.wait_until(lambda: len(acked) >= 5, 10.0, what="a few acknowledged batches")
        finally:
            c.kill_worker("worker-2")
            stop.set()
            t.join(30)
        self.assertFalse(t.is_alive())
        for _, batch in acked:
            for p in batch:
                self.ledger.append((self.key_partition[p["partition_key"]], p["value"]))
        c.workers["worker-2"].start()
        c.workers["worker-2"].wait_listening()
        # Every acknowledged batch is there; the one in flight is completed by its retry.
        for key, batch in unacked:
            r = None
            for _ in range(100):
                r = c.insert(batch, {"Idempotency-Key": key})
                if r.status == 200:
                    break
                time.sleep(0.1)
            self.assertEqual(r.status, 200, r)
            for p in batch:
                self.ledger.append((self.key_partition[p["partition_key"]], p["value"]))
        self.assert_complete_and_exact()

    def test_4_no_worker_answering_is_503(self):
        c = self.c
        c.kill_worker("worker-1")
        c.kill_worker("worker-2")
        r = c.analytics(metric="fail")
        body = R.assert_error_shape(self, r, 503, "UNAVAILABLE")
        self.assertEqual(body["details"].get("responding_nodes"), 0, body)
        self.assertEqual(sorted(body["details"].get("missing_shards", [])), list(range(SHARDS)), body)
        r = R.get(c.port, "/analytics", headers={"Accept": "application/x-protobuf"})
        R.assert_error_shape(self, r, 503)
        r = c.insert({"partition_key": "k1", "value": 1.0, "metric": "fail"})
        R.assert_error_shape(self, r, 503)
        r = c.insert([{"partition_key": "k%d" % i, "value": 1.0, "metric": "fail"} for i in range(10)])
        body = R.assert_error_shape(self, r, 503)
        self.assertEqual(body["details"].get("stored_points"), 0, body)
        # Both back: every point from before is there.
        for w in c.workers.values():
            w.start()
        self.assert_complete_and_exact()


    def test_5_restarted_worker_never_answers_complete_but_short(self):
        # While a restarted worker opens its shard files it must not report those
        # shards as empty: an answer is either partial or counts every point.
        c = self.c
        for i in range(16):
            self.insert_point("r%d" % i, 1.0 + i)
        c.kill_worker("worker-2")
        c.workers["worker-2"].start()
        self.assert_complete_and_exact(strict=True)

    def test_6_control_reaches_a_restarted_worker_at_once(self):
        # Once a restarted worker serves requests again, the control node must
        # use it: stale keep-alive connections to the dead process may not turn
        # the next writes into 503s or the next queries into partial answers.
        c = self.c
        for i in range(8):
            self.insert_point("c%d" % i, 2.0 * i)
        w2_key = self.keys_on(c.shard_map()["worker-2"], 1, "c")[0]
        # Concurrent queries and writes leave several idle connections to each worker.
        threads = [threading.Thread(target=lambda: c.analytics(metric="fail")) for _ in range(16)]
        threads += [threading.Thread(target=lambda i=i: c.insert({"partition_key": "warm-%d" % i, "value": 0.0,
                                                                  "metric": "warm"})) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        on_w2 = c.compute("worker-2", {"metric": "fail"})["count"]
        c.kill_worker("worker-2")
        c.workers["worker-2"].start()
        # The worker answers directly, with all its data.
        R.wait_until(lambda: c.compute("worker-2", {"metric": "fail"}, timeout=2.0)["count"] == on_w2,
                     15.0, 0.02, "worker-2 to serve its %d points again" % on_w2)
        problems = []
        hdr = {"Idempotency-Key": "after-restart-1"}
        point = {"partition_key": w2_key, "value": 9.0, "metric": "fail"}
        r = c.insert(point, hdr)
        if r.status != 200:
            problems.append(("write to worker-2", r))
        for _ in range(3):
            r = c.analytics(metric="fail")
            a = r.json() if r.status == 200 else None
            if not a or a["is_partial"]:
                problems.append(("query", a or r))
        # Complete the write (same key: at most once) and check nothing was lost.
        for _ in range(200):
            r = c.insert(point, hdr)
            if r.status == 200:
                break
            time.sleep(0.02)
        self.assertEqual(r.status, 200, r)
        self.ledger.append((self.key_partition[w2_key], 9.0))
        self.assert_complete_and_exact()
        self.assertFalse(problems, "worker-2 was up and serving, yet the control node failed these requests "
                         "(stale keep-alive connections to the killed process?): %r" % problems)


if __name__ == "__main__":
    R.main()
