"""Shards replicated by Raft (--replication-factor 3 on three workers): every
replica stores every acknowledged point once, a worker killed with -9 leaves
writes and complete answers working, it catches up when it returns, and without
a quorum a write fails with 503 RAFT_ERROR instead of hanging or acknowledging."""
import signal
import time
import unittest

import rmtest as R

SHARDS = 4


def make_cluster(name):
    return R.Cluster(workers=3, shards=SHARDS, name=name, control_args=["--replication-factor", "3"])


def groups_of(port):
    h = R.get(port, "/health", timeout=3).json()
    return h.get("raft_status", {}).get("groups", [])


def stored_points(port):
    return sum(s["points"] for s in R.get(port, "/stats", timeout=3).json()["shards"])


def insert_until_ok(c, body, key, timeout_s=20.0):
    """Retries one batch with one Idempotency-Key until it is acknowledged."""
    last = [None]

    def attempt():
        r = c.insert(body, headers={"Idempotency-Key": key})
        last[0] = r
        return r.status == 200 and r
    try:
        return R.wait_until(attempt, timeout_s, 0.2, "the write %s to be acknowledged" % key)
    except AssertionError as e:
        raise AssertionError("%s; last answer %r" % (e, last[0]))


class ReplicationTest(unittest.TestCase):
    def setUp(self):
        self.c = make_cluster("replication").start()
        # Every worker runs a replica of every shard, and every group has a leader.
        def elected():
            leaders = set()
            for w in self.c.workers.values():
                gs = groups_of(w.port)
                if len(gs) != SHARDS:
                    return False
                leaders |= {g["shard"] for g in gs if g["role"] == "leader"}
            return len(leaders) == SHARDS
        R.wait_until(elected, 30.0, 0.1, "every shard's Raft group to elect a leader")

    def tearDown(self):
        self.c.stop()

    def test_every_replica_stores_every_point_and_survives_a_kill(self):
        pts = [{"partition_key": "rep-%d" % i, "value": float(i)} for i in range(200)]
        r = insert_until_ok(self.c, pts, "batch-1")
        self.assertEqual(r.json()["inserted"], 200)
        # /status on every node: each group with its role, term, indexes and peers.
        for w in self.c.workers.values():
            st = R.get(w.port, "/status").json()
            self.assertEqual(len(st["groups"]), SHARDS, st)
            for g in st["groups"]:
                self.assertEqual(len(g["peers"]), 3, g)
                self.assertIn(g["role"], ("leader", "follower"), g)
                self.assertGreaterEqual(g["term"], 1, g)
                for key in ("commit_index", "applied_index", "last_log_index", "leader_id", "last_heartbeat"):
                    self.assertIn(key, g)
            rs = R.get(w.port, "/health").json()["raft_status"]
            for key in ("role", "term", "last_log_index", "leader_id", "last_heartbeat", "groups"):
                self.assertIn(key, rs)
            self.assertTrue(rs["last_heartbeat"], rs)
        cs = R.get(self.c.port, "/status").json()
        self.assertEqual(cs["replication_factor"], 3)
        self.assertEqual([len(s["replicas"]) for s in cs["shards"]], [3] * SHARDS)
        self.assertEqual(cs["groups"][0]["group"], "meta")
        text = R.get(self.c.workers["worker-2"].port, "/metrics").body.decode()
        for series in ("raftmetrics_raft_term{shard=", "raftmetrics_raft_is_leader{shard=",
                       "raftmetrics_raft_commit_index{shard=", "raftmetrics_raft_applied_index{shard=",
                       "raftmetrics_raft_elections_total{shard=", "raftmetrics_raft_role{shard="):
            self.assertIn(series, text)
        proposals = sum(float(l.rsplit(" ", 1)[1]) for w in self.c.workers.values()
                        for l in R.get(w.port, "/metrics").body.decode().splitlines()
                        if l.startswith('raftmetrics_raft_proposals_total{outcome="ok"}'))
        self.assertGreaterEqual(proposals, 1)
        a = self.c.wait_complete(count=200)
        self.assertAlmostEqual(a["average"], 99.5)
        # Read levels: strong (leader after a barrier) sees every acknowledged
        # write at once; none may read any replica; anything else is refused.
        strong = self.c.analytics_ok(consistency="strong")
        self.assertEqual((strong["count"], strong["is_partial"]), (200, False), strong)
        agg = R.get(self.c.port, "/aggregate", {"metric": "default", "agg": "count", "consistency": "strong",
                                                "from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"})
        self.assertEqual(agg.status, 200, agg)
        self.assertFalse(agg.json()["is_partial"], agg.json())
        self.c.wait_complete(count=200, consistency="none")
        for path in ("/analytics", "/aggregate"):
            bad = R.get(self.c.port, path, {"metric": "default", "consistency": "eventual"})
            b = R.assert_error_shape(self, bad, 400, "VALIDATION_ERROR")
            self.assertIn("consistency", [f["field"] for f in b["details"]["fields"]], b)
        for w in self.c.workers.values():
            R.wait_until(lambda: stored_points(w.port) == 200, 10.0, what="%s to hold all 200 points" % w.node_id)

        victim = self.c.workers["worker-1"]
        victim.kill(signal.SIGKILL)
        pts2 = [{"partition_key": "rep2-%d" % i, "value": 1.0} for i in range(100)]
        r = insert_until_ok(self.c, pts2, "batch-2")
        self.assertEqual(r.json()["inserted"], 100)
        # Retrying the same key stores nothing more.
        r = insert_until_ok(self.c, pts2, "batch-2")
        # At once (before the health checks notice the kill), a default (weak)
        # read finds every shard: shards whose leader hint names the dead
        # worker are asked of the other replicas, and the new leaders have
        # applied every acknowledged write.
        for path, params in (("/analytics", {}), ("/aggregate", {"metric": "default", "agg": "count",
                                                                  "from": "2000-01-01T00:00:00Z",
                                                                  "to": "2100-01-01T00:00:00Z"})):
            a = R.get(self.c.port, path, params).json()
            count = a["count"] if path == "/analytics" else a["aggregations"]["count"]
            self.assertEqual((count, a["is_partial"]), (300, False), a)
        self.c.wait_worker_health("worker-1", False)
        a = self.c.wait_complete(count=300)
        self.assertFalse(a["is_partial"], a)

        # It comes back and catches up from its log.
        victim.start()
        victim.wait_listening()
        R.wait_until(lambda: stored_points(victim.port) == 300, 20.0, what="worker-1 to catch up to 300 points")
        for w in self.c.workers.values():
            self.assertEqual(stored_points(w.port), 300, w.node_id)

    def test_no_quorum_is_raft_error_not_a_hang(self):
        R.post(self.c.port, "/insert", {"partition_key": "q", "value": 1})
        for wid in ("worker-2", "worker-3"):
            self.c.workers[wid].kill(signal.SIGKILL)
        time.sleep(0.5)
        started = time.monotonic()
        r = self.c.insert([{"partition_key": "nq-%d" % i, "value": 1} for i in range(20)],
                          headers={"Idempotency-Key": "nq"})
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 15.0)
        b = R.assert_error_shape(self, r, 503)
        self.assertIn(b["code"], ("RAFT_ERROR",), b)
        self.assertEqual(b["details"]["required_nodes"], 2, b)
        self.assertIn("retry_after", b["details"])
        self.assertTrue(r.header("retry-after"))


if __name__ == "__main__":
    R.main()
