"""Worker registration: workers started with CONTROL_HOST (no WORKER_HOSTS,
control with --min-workers 2) get shards once enough have joined; a worker named
in WORKER_HOSTS that also registers via CONTROL_HOST counts once; the control
node keeps its cluster map across a restart."""
import time
import unittest

import rmtest as R

SHARDS = 8


def assert_placement(tc, health, n_workers):
    workers = health["workers"]
    tc.assertEqual(len(workers), n_workers, health)
    tc.assertEqual(health["worker_nodes"], {"total": n_workers, "healthy": n_workers}, health)
    ids = sorted(w["id"] for w in workers)
    tc.assertEqual(ids, ["worker-%d" % i for i in range(1, n_workers + 1)], health)
    all_shards = []
    for w in workers:
        tc.assertTrue(w["shards"], "worker %s got no shard: %r" % (w["id"], health))
        all_shards += w["shards"]
    tc.assertEqual(sorted(all_shards), list(range(SHARDS)), health)


class RegistrationTest(unittest.TestCase):
    def insert_and_check(self, c, n=24, metric="reg"):
        before = c.count(metric=metric)
        body = [{"partition_key": "reg-%d" % i, "value": float(i), "metric": metric} for i in range(n)]
        # A worker's first write opens its shard files, which can outlast the
        # tests' 1.5 s write timeout on a loaded machine (ASan): retry as a
        # client does, with one Idempotency-Key, so nothing is stored twice.
        key = "reg-%s-%d" % (metric, before)
        last = []
        R.wait_until(lambda: last.append(c.insert(body, headers={"Idempotency-Key": key})) or last[-1].status == 200,
                     20.0, 0.2, "the insert to be acknowledged")
        self.assertEqual(last[-1].status, 200, last[-1])
        self.assertEqual(c.count(metric=metric), before + n)
        per_worker = sum(c.compute(w, {"metric": metric})["count"] for w in c.workers)
        self.assertEqual(per_worker, before + n)

    def test_workers_that_start_together_share_the_shards_without_min_workers(self):
        # Seed 001's dynamic discovery, the docker-compose way: no WORKER_HOSTS,
        # no MIN_WORKERS; the workers come up a moment apart. Shards are placed
        # once no new worker registered for 2 s, over both (issue 19, item 2).
        c = R.Cluster(workers=2, shards=SHARDS, mode="register", name="register-settle")
        try:
            i = c.control.args.index("--min-workers")
            del c.control.args[i:i + 2]
            c.control.start()
            c.workers["worker-1"].start()
            time.sleep(0.7)
            c.workers["worker-2"].start()
            assert_placement(self, c.wait_ready(), 2)
            self.insert_and_check(c, metric="settle")
        finally:
            c.stop()

    def test_workers_register_with_control_host(self):
        c = R.Cluster(workers=2, shards=SHARDS, mode="register", name="register")
        try:
            self.assertNotIn("--worker-hosts", c.control.args)
            c.control.start()
            c.workers["worker-1"].start()
            c.control.wait_listening()
            # One worker of the two required: known, but no shards placed yet.
            h = R.wait_until(lambda: (lambda h: h["worker_nodes"]["total"] == 1 and h)(c.health()), 10.0,
                             what="worker-1 to register")
            self.assertIs(h["cluster_ready"], False, h)
            self.assertEqual(h["workers"][0]["id"], "worker-1", h)
            self.assertEqual(h["workers"][0]["shards"], [], h)
            r = c.insert({"partition_key": "early", "value": 1.0})
            R.assert_error_shape(self, r, 503, "UNAVAILABLE")
            R.assert_error_shape(self, c.analytics(), 503, "UNAVAILABLE")
            # The second worker joins: shards are placed over both.
            c.workers["worker-2"].start()
            h = c.wait_ready()
            assert_placement(self, h, 2)
            for w in h["workers"]:
                self.assertEqual(w["address"], c.workers[w["id"]].address, h)
            # Each worker knows its own shards.
            for w in h["workers"]:
                wh = R.wait_until(lambda: (lambda j: j["shards"] and j)(R.get(c.workers[w["id"]].port, "/health").json()),
                                  10.0, what="%s to learn its shards" % w["id"])
                self.assertEqual(sorted(wh["shards"]), sorted(w["shards"]))
            self.insert_and_check(c)

            # The control node restarts (kill -9): same placement from its DB_PATH, data intact.
            placement = c.shard_map()
            c.control.kill()
            c.control.start()
            h = c.wait_ready()
            self.assertEqual(c.shard_map(), placement)
            self.assertEqual(c.wait_complete(metric="reg")["count"], 24)
            # A re-registering worker (restarted) still counts once and keeps its shards.
            c.workers["worker-1"].stop()
            c.workers["worker-1"].start()
            c.workers["worker-1"].wait_listening()
            c.wait_complete(24, metric="reg")
            self.assertEqual(c.shard_map(), placement)
            self.assertEqual(c.health()["worker_nodes"]["total"], 2)
        finally:
            c.stop()

    def _assert_counts_once(self, c):
        h = c.wait_ready()
        assert_placement(self, h, 2)
        # Registration repeats; the count must stay at two.
        deadline = time.monotonic() + 1.0
        for _ in range(50):
            h = c.health()
            self.assertEqual(h["worker_nodes"]["total"], 2, h)
            self.assertEqual(len(h["workers"]), 2, h)
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.insert_and_check(c)
        a = c.analytics_ok(metric="reg")
        self.assertEqual(a["total_nodes"], 2, a)
        self.assertFalse(a["is_partial"], a)

    def test_worker_named_both_ways_counts_once(self):
        c = R.Cluster(workers=2, shards=SHARDS, mode="both", name="both")
        try:
            self.assertIn("--worker-hosts", c.control.args)
            self.assertIn("--control-host", c.workers["worker-1"].args)
            c.start(wait=False)
            self._assert_counts_once(c)
        finally:
            c.stop()

    def test_worker_named_by_localhost_and_registered_counts_once(self):
        # WORKER_HOSTS says localhost:P, the worker registers as 127.0.0.1:P.
        c = R.Cluster(workers=2, shards=SHARDS, mode="register", name="both-localhost")
        try:
            w1, w2 = c.workers["worker-1"], c.workers["worker-2"]
            c.control.args += ["--worker-hosts", "localhost:%d,127.0.0.1:%d" % (w1.port, w2.port)]
            # Control first, so registration and health checks race.
            c.control.start()
            c.control.wait_listening()
            w1.start()
            w2.start()
            self._assert_counts_once(c)
        finally:
            c.stop()


if __name__ == "__main__":
    R.main()
