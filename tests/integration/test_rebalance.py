"""Membership changes under ingest (issue 5): a 4th worker joins a 3-worker
RF=3 cluster while a client inserts without pause; shard replicas move onto
it (add as learner, catch up, promote, remove the old one) until every worker
holds its share; then one worker is decommissioned with POST /remove: its
replicas move away first, then it leaves the cluster map. No acknowledged
point is lost or stored twice: every replica of every shard ends with the same
count and sum, and the shards add up to the client's ledger."""
import os
import time
import unittest

import rmtest as R
from test_raft_ingest import Ingester, shard_stats

SHARDS = 4
WORKER_ARGS = ["--raft-snapshot-threshold", "32", "--raft-snapshot-trailing", "8"]


def status(c):
    return R.get(c.port, "/status", timeout=5).json()


def replica_sets(c):
    return {s["shard"]: sorted(s["replicas"]) for s in status(c)["shards"]}


def settled(c):
    st = status(c)
    return not any("moving" in s for s in st["shards"]) and not st["rebalancing"]["current_move"] and st


class RebalanceTest(unittest.TestCase):
    def setUp(self):
        self.c = R.Cluster(workers=3, shards=SHARDS, mode="register", name="rebalance",
                           control_args=["--replication-factor", "3"], worker_args=WORKER_ARGS).start()

    def tearDown(self):
        self.c.stop()

    def add_worker(self, i):
        port = R.free_port()
        wid = "worker-%d" % i
        db = os.path.join(self.c.dir, wid)
        args = ["--id", str(i), "--port", str(port), "--bind", "127.0.0.1", "--raft-port", str(R.free_port()),
                "--db-path", db, "--control-host", "127.0.0.1:%d" % self.c.port,
                "--health-interval-ms", "200"] + WORKER_ARGS
        node = R.Node("worker", wid, port, db, os.path.join(self.c.dir, wid + ".log"), args)
        self.c.workers[wid] = node
        node.start()
        node.wait_listening()
        return node

    def assert_replicas_agree(self, ing):
        seen = {}

        def agree():
            sets = replica_sets(self.c)
            stats = {wid: shard_stats(self.c.workers[wid].port) for wid in {w for ws in sets.values() for w in ws}}
            seen["last"] = (sets, stats)
            per_shard = {}
            for shard, members in sets.items():
                values = [stats[w].get(shard) for w in members]
                if len(members) != 3 or any(v != values[0] or v is None for v in values):
                    return False
                per_shard[shard] = values[0]
            return per_shard
        try:
            per_shard = R.wait_until(agree, 30.0, 0.2, "every replica of every shard to agree")
        except AssertionError as e:
            raise AssertionError("%s; last seen %r" % (e, seen.get("last")))
        self.assertEqual(sum(p for p, _ in per_shard.values()), ing.acked_points, per_shard)
        self.assertEqual(sum(s for _, s in per_shard.values()), ing.acked_sum, per_shard)

    def test_join_rebalances_and_remove_decommissions_during_ingest(self):
        ing = Ingester(self.c)
        ing.start()
        R.wait_until(lambda: ing.acked_points >= 300 or ing.error, 30.0, 0.05, "ingest to get going")

        self.add_worker(4)

        def balanced():
            st = settled(self.c)
            if not st:
                return False
            load = {}
            for s in st["shards"]:
                for w in s["replicas"]:
                    load[w] = load.get(w, 0) + 1
            return len(load) == 4 and max(load.values()) - min(load.values()) <= 1 and load
        load = R.wait_until(balanced, 90.0, 0.2, "replicas to spread onto worker-4")
        self.assertEqual(sum(load.values()), SHARDS * 3, load)
        self.assertGreaterEqual(status(self.c)["rebalancing"]["moves_done"], 2)
        R.wait_until(lambda: ing.acked_points >= 1500 or ing.error, 60.0, 0.05, "ingest after the join")
        ing.hold()
        self.assert_replicas_agree(ing)
        ing.release()

        # Decommission worker-1: its replicas move first, then it leaves.
        r = R.post(self.c.port, "/remove", {"id": "worker-1"})
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.json()["status"], ("decommissioning", "removed"), r.json())
        R.wait_until(lambda: "worker-1" in status(self.c)["removed_workers"], 120.0, 0.2, "worker-1 to be removed")
        sets = replica_sets(self.c)
        for shard, members in sets.items():
            self.assertEqual(len(members), 3, sets)
            self.assertNotIn("worker-1", members, sets)
        self.assertNotIn("worker-1", [w["id"] for w in self.c.health()["workers"]])
        # Its data goes with it.
        R.wait_until(lambda: shard_stats(self.c.workers["worker-1"].port) == {}, 20.0, 0.2,
                     "worker-1 to drop its shard files")
        base = ing.acked_points
        R.wait_until(lambda: ing.acked_points >= base + 300 or ing.error, 60.0, 0.05, "ingest after the removal")
        ing.finish()
        self.assertIsNone(ing.error)
        del self.c.workers["worker-1"]  # no longer part of the comparison (stopped at teardown via its Node)
        self.assert_replicas_agree(ing)
        a = self.c.wait_complete(count=ing.acked_points)
        self.assertFalse(a["is_partial"], a)

        # Bad requests.
        b = R.assert_error_shape(self, R.post(self.c.port, "/remove", {}), 400, "VALIDATION_ERROR")
        self.assertEqual(b["details"]["fields"][0]["field"], "id")
        R.assert_error_shape(self, R.post(self.c.port, "/remove", {"id": "worker-99"}), 404)
        # Three workers left for RF 3: none can go.
        b = R.assert_error_shape(self, R.post(self.c.port, "/remove", {"id": "worker-2"}), 400, "VALIDATION_ERROR")
        self.assertIn("cannot be removed", b["details"]["fields"][0]["error"])
        # A removed worker may not register again under its old id.
        b = R.assert_error_shape(self, R.post(self.c.port, "/join", {"id": "worker-1", "addr": "127.0.0.1:1"}),
                                 400, "VALIDATION_ERROR")


class ReplaceDeadTest(unittest.TestCase):
    """A worker dead longer than --replace-dead-after-s has its replicas
    re-created on the live workers; a restart of every process brings back all
    data and the cluster map."""

    def setUp(self):
        self.c = R.Cluster(workers=4, shards=SHARDS, mode="register", name="replace-dead",
                           control_args=["--replication-factor", "3", "--replace-dead-after-s", "2"],
                           worker_args=WORKER_ARGS).start()

    def tearDown(self):
        self.c.stop()

    def test_dead_worker_is_replaced_then_a_full_restart_keeps_everything(self):
        ing = Ingester(self.c)
        ing.start()
        R.wait_until(lambda: ing.acked_points >= 300 or ing.error, 30.0, 0.05, "ingest to get going")
        dead = self.c.workers["worker-2"]
        dead.kill()

        def replaced():
            sets = replica_sets(self.c)
            return settled(self.c) and all(len(m) == 3 and "worker-2" not in m for m in sets.values()) and sets
        sets = R.wait_until(replaced, 90.0, 0.2, "worker-2's replicas to be re-created elsewhere")
        R.wait_until(lambda: ing.acked_points >= 1200 or ing.error, 60.0, 0.05, "ingest after the replacement")
        ing.finish()
        self.assertIsNone(ing.error)
        live = ["worker-1", "worker-3", "worker-4"]

        def agree():
            stats = {w: shard_stats(self.c.workers[w].port) for w in live}
            values = {s: {stats[w].get(s) for w in members} for s, members in sets.items()}
            return all(len(v) == 1 and None not in v for v in values.values()) and values
        values = R.wait_until(agree, 30.0, 0.2, "the replicas to agree")
        self.assertEqual(sum(next(iter(v))[0] for v in values.values()), ing.acked_points)
        self.assertEqual(sum(next(iter(v))[1] for v in values.values()), ing.acked_sum)

        # Every process restarts (the dead worker stays dead): data and map come back.
        before = replica_sets(self.c)
        for node in [self.c.control] + [self.c.workers[w] for w in live]:
            node.stop()
        for node in [self.c.workers[w] for w in live] + [self.c.control]:
            node.start()
        self.c.control.wait_listening()
        self.assertEqual(replica_sets(self.c), before)
        a = self.c.wait_complete(count=ing.acked_points, timeout_s=30.0)
        self.assertFalse(a["is_partial"], a)
        # Writes go on once the groups have elected (a client retries with its key).
        R.wait_until(lambda: self.c.insert([{"partition_key": "after-restart", "value": 1}],
                                           headers={"Idempotency-Key": "after-restart"}).status == 200,
                     30.0, 0.2, "a write after the restart")


if __name__ == "__main__":
    R.main()
