"""The meta group (issue 5): three control nodes replicate the cluster map
through their own Raft group. Each serves inserts and queries; /join and
/remove sent to a follower are passed to the leader; when the leader dies the
other two elect a new one, which keeps changing the map (a worker joins and
gets replicas); the dead one comes back and catches up.

ControlJoinTest: control nodes join a running group of one at run time
(POST /join with role "control", sent by the new nodes themselves), and a dead
one is removed with POST /remove."""
import os
import signal
import time
import unittest

import rmtest as R

SHARDS = 4


class MetaGroupTest(unittest.TestCase):
    def setUp(self):
        self.dir = R.make_temp_dir("rm-meta-")
        http = [R.free_port() for _ in range(3)]
        raft = [R.free_port() for _ in range(3)]
        members = ",".join("127.0.0.1:%d@%d" % (h, r) for h, r in zip(http, raft))
        timing = ["--query-timeout-ms", "1000", "--write-timeout-ms", "3000", "--health-interval-ms", "200"]
        self.controls = {}
        for i in range(3):
            cid = "control-%d" % (i + 1)
            db = os.path.join(self.dir, cid)
            args = ["--id", str(i + 1), "--port", str(http[i]), "--bind", "127.0.0.1",
                    "--advertise", "127.0.0.1:%d" % http[i], "--raft-port", str(raft[i]),
                    "--control-nodes", members, "--db-path", db, "--shards", str(SHARDS),
                    "--replication-factor", "3", "--min-workers", "3"] + timing
            self.controls[cid] = R.Node("control", cid, http[i], db, os.path.join(self.dir, cid + ".log"), args)
        self.workers = {}
        for i in range(1, 4):
            self.add_worker(i, start=False)
        for n in list(self.controls.values()) + list(self.workers.values()):
            n.start()

    def add_worker(self, i, start=True, control_hosts=None):
        wid = "worker-%d" % i
        port = R.free_port()
        db = os.path.join(self.dir, wid)
        args = ["--id", str(i), "--port", str(port), "--bind", "127.0.0.1", "--raft-port", str(R.free_port()),
                "--db-path", db, "--control-host",
                control_hosts or "127.0.0.1:%d" % self.controls["control-1"].port,
                "--health-interval-ms", "200"]
        self.workers[wid] = R.Node("worker", wid, port, db, os.path.join(self.dir, wid + ".log"), args)
        if start:
            self.workers[wid].start()
            self.workers[wid].wait_listening()
        return self.workers[wid]

    def tearDown(self):
        for n in list(self.controls.values()) + list(self.workers.values()):
            n.stop()

    def meta(self, node):
        st = R.get(node.port, "/status", timeout=3).json()
        return [g for g in st["groups"] if g["group"] == "meta"][0]

    def leader(self, among):
        def one():
            roles = {cid: self.meta(self.controls[cid]) for cid in among}
            leaders = [cid for cid, g in roles.items() if g["role"] == "leader"]
            agreed = {g["leader_id"] for g in roles.values()}
            return len(leaders) == 1 and agreed == {leaders[0]} and leaders[0]
        return R.wait_until(one, 20.0, 0.1, "one meta leader that %s agree on" % among)

    def ready(self, cid, workers):
        def ok():
            h = R.get(self.controls[cid].port, "/health", timeout=3).json()
            return h.get("cluster_ready") and h["worker_nodes"] == {"total": workers, "healthy": workers}
        R.wait_until(ok, 40.0, 0.1, "%s to see %d healthy workers" % (cid, workers))

    def test_three_control_nodes_share_the_map_and_survive_the_leader(self):
        all_ids = sorted(self.controls)
        leader = self.leader(all_ids)
        for cid in all_ids:
            self.ready(cid, 3)
            g = self.meta(self.controls[cid])
            self.assertEqual(len(g["peers"]), 3, g)
            h = R.get(self.controls[cid].port, "/health").json()["raft_status"]
            self.assertIn(h["role"], ("leader", "follower"), h)
            self.assertEqual(h["leader_id"], leader, h)

        # Every control node takes writes and answers queries.
        for n, cid in enumerate(all_ids):
            body = [{"partition_key": "meta-%d-%d" % (n, i), "value": 1.0} for i in range(30)]
            r = R.post(self.controls[cid].port, "/insert", body, headers={"Idempotency-Key": "meta-%d" % n})
            self.assertEqual(r.status, 200, r)
        for cid in all_ids:
            R.wait_until(lambda: R.get(self.controls[cid].port, "/analytics").json().get("count") == 90, 20.0, 0.1,
                         "%s to count 90 points" % cid)

        # The leader dies; the other two elect one and keep changing the map:
        # a new worker registers through a follower and gets replicas.
        self.controls[leader].kill(signal.SIGKILL)
        rest = [cid for cid in all_ids if cid != leader]
        new_leader = self.leader(rest)
        follower = [cid for cid in rest if cid != new_leader][0]
        # worker-4 lists every control node, the dead leader first: it registers
        # through the next one that answers.
        self.add_worker(4, control_hosts=",".join("127.0.0.1:%d" % self.controls[cid].port
                                                   for cid in [leader] + rest))
        # /join sent to a follower is passed to the leader (answers 200 there too).
        w5 = self.add_worker(5)
        r = R.post(self.controls[follower].port, "/join",
                   {"id": "worker-5", "addr": "127.0.0.1:%d" % w5.port, "role": "worker"})
        self.assertEqual(r.status, 200, r)
        for cid in rest:
            self.ready(cid, 5)

        def spread():
            shards = R.get(self.controls[new_leader].port, "/status").json()["shards"]
            return any("worker-4" in s["replicas"] for s in shards) and not any("moving" in s for s in shards)
        R.wait_until(spread, 60.0, 0.2, "replicas to move onto worker-4")
        r = R.post(self.controls[follower].port, "/insert", [{"partition_key": "after", "value": 1.0}])
        self.assertEqual(r.status, 200, r)

        # The old leader comes back and catches up with the map.
        self.controls[leader].start()
        self.controls[leader].wait_listening()
        self.ready(leader, 5)
        maps = [R.get(self.controls[cid].port, "/status").json()["shards"] for cid in all_ids]
        R.wait_until(lambda: len({str([s["replicas"] for s in R.get(self.controls[cid].port, "/status").json()["shards"]])
                                  for cid in all_ids}) == 1, 20.0, 0.2, "the three control nodes to agree on the map")
        self.assertTrue(maps)
        for cid in all_ids:
            R.wait_until(lambda: R.get(self.controls[cid].port, "/analytics").json().get("count") == 91, 20.0, 0.1,
                         "%s to count 91 points" % cid)


class ControlJoinTest(unittest.TestCase):
    def setUp(self):
        self.dir = R.make_temp_dir("rm-metajoin-")
        self.nodes = []
        self.controls = {}
        self.control("control-1")
        self.controls["control-1"].start()
        wport = R.free_port()
        wdb = os.path.join(self.dir, "worker-1")
        self.worker = R.Node("worker", "worker-1", wport, wdb, os.path.join(self.dir, "worker-1.log"),
                             ["--id", "1", "--port", str(wport), "--bind", "127.0.0.1", "--raft-port",
                              str(R.free_port()), "--db-path", wdb, "--control-host", self.addr("control-1"),
                              "--health-interval-ms", "200"])
        self.nodes.append(self.worker)
        self.worker.start()

    def control(self, cid, *join):
        port = R.free_port()
        db = os.path.join(self.dir, cid)
        args = ["--id", cid, "--port", str(port), "--bind", "127.0.0.1", "--advertise", "127.0.0.1:%d" % port,
                "--raft-port", str(R.free_port()), "--db-path", db, "--shards", "4", "--min-workers", "1",
                "--query-timeout-ms", "1000", "--write-timeout-ms", "3000", "--health-interval-ms", "200"]
        args += list(join)
        node = R.Node("control", cid, port, db, os.path.join(self.dir, cid + ".log"), args)
        self.controls[cid] = node
        self.nodes.append(node)
        return node

    def addr(self, cid):
        return "127.0.0.1:%d" % self.controls[cid].port

    def tearDown(self):
        for n in self.nodes:
            n.stop()

    def meta(self, cid):
        st = R.get(self.controls[cid].port, "/status", timeout=3).json()
        return [g for g in st["groups"] if g["group"] == "meta"][0]

    def agreed(self, among, voters):
        """Waits until every node of `among` names the same leader, lists
        `among` as the peers and has `voters` voters; returns the leader."""
        def same():
            gs = {cid: self.meta(cid) for cid in among}
            leaders = {g["leader_id"] for g in gs.values()}
            peers = {tuple(sorted(p["id"] for p in g["peers"])) for g in gs.values()}
            ok = (len(leaders) == 1 and "" not in leaders and peers == {tuple(sorted(among))}
                  and all(len(g["voters"]) == voters for g in gs.values()))
            return ok and leaders.pop()
        return R.wait_until(same, 30.0, 0.1, "%s to agree on the meta group" % among)

    def test_control_nodes_join_at_run_time_and_a_dead_one_is_removed(self):
        R.wait_until(lambda: R.get(self.controls["control-1"].port, "/health").json().get("cluster_ready"),
                     20.0, 0.1, "control-1 to assign its shards")
        r = R.post(self.controls["control-1"].port, "/insert", [{"partition_key": "k%d" % i, "value": 2.0}
                                                                 for i in range(20)])
        self.assertEqual(r.status, 200, r)

        # Bad joins are refused with every bad field named.
        b = R.assert_error_shape(self, R.post(self.controls["control-1"].port, "/join",
                                              {"id": "x", "addr": "nohost", "role": "chief"}), 400, "VALIDATION_ERROR")
        self.assertEqual({f["field"] for f in b["details"]["fields"]}, {"addr", "role"}, b)
        # An address already in the group under another id.
        R.assert_error_shape(self, R.post(self.controls["control-1"].port, "/join",
                                          {"id": "control-9", "addr": self.addr("control-1"), "role": "control"}),
                             400, "VALIDATION_ERROR")

        # control-2 joins through control-1 (--control-host), control-3 through
        # the list of the others (--control-nodes not naming itself).
        self.control("control-2", "--control-host", self.addr("control-1")).start()
        self.assertEqual(self.agreed(["control-1", "control-2"], 2), "control-1")
        self.control("control-3", "--control-nodes", self.addr("control-2") + "," + self.addr("control-1")).start()
        self.assertEqual(self.agreed(["control-1", "control-2", "control-3"], 3), "control-1")
        for cid in ("control-2", "control-3"):
            R.wait_until(lambda: R.get(self.controls[cid].port, "/analytics").json().get("count") == 20, 20.0, 0.1,
                         "%s to have the map and count 20 points" % cid)
        # A repeated announcement is harmless.
        r = R.post(self.controls["control-2"].port, "/join",
                   {"id": "control-3", "addr": self.addr("control-3"), "role": "control"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["status"], "member", r)

        # The founder dies: the two that joined elect a leader and keep serving.
        self.controls["control-1"].kill(signal.SIGKILL)
        def new_leader():
            g = self.meta("control-2")
            return g["role"] in ("leader", "follower") and g["leader_id"] in ("control-2", "control-3") and g["leader_id"]
        leader = R.wait_until(new_leader, 20.0, 0.1, "control-2 and control-3 to elect a leader")
        r = R.post(self.controls["control-3"].port, "/insert", [{"partition_key": "after", "value": 4.0}],
                   headers={"Idempotency-Key": "after-1"})
        self.assertEqual(r.status, 200, r)

        # The dead founder is removed (sent to either node), and the map changes still commit.
        r = R.post(self.controls["control-3"].port, "/remove", {"id": "control-1"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["status"], "removed", r)
        self.assertEqual(self.agreed(["control-2", "control-3"], 2), leader)
        R.assert_error_shape(self, R.post(self.controls["control-2"].port, "/remove", {"id": "control-1"}), 404)
        for cid in ("control-2", "control-3"):
            R.wait_until(lambda: R.get(self.controls[cid].port, "/analytics").json().get("count") == 21, 20.0, 0.1,
                         "%s to count 21 points" % cid)


if __name__ == "__main__":
    R.main()
