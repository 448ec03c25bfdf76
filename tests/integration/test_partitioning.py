"""Same partition_key -> same worker and partition every time, whichever node
receives it: the control node routes it, and a worker that does not hold the
shard forwards it to the owner. The data sits only on the owner (worker /compute
shows only local data) and the partition is one the owner holds in control
/health."""
import unittest

import rmtest as R

KEYS = ["user%d" % i for i in range(20)] + ["cpu_usage", "host-a.dc-1", "x", "Z_9.-", "\u00e9t\u00e9"]


class PartitioningTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One copy per shard: this file is about where each key lands.
        cls.c = R.Cluster(workers=3, shards=12, name="partition",
                          control_args=["--replication-factor", "1"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def insert_via(self, port, key, value, metric):
        r = R.post(port, "/insert", {"partition_key": key, "value": value, "metric": metric})
        self.assertEqual(r.status, 200, (port, key, r))
        body = r.json()
        self.assertIs(body.get("success"), True, body)
        return body["worker_node"], body["partition"]

    def test_same_key_same_worker_whichever_node_receives_it(self):
        c = self.c
        shard_map = c.shard_map()
        self.assertEqual(sorted(shard_map), ["worker-1", "worker-2", "worker-3"])
        self.assertEqual(sorted(s for v in shard_map.values() for s in v), list(range(12)))
        owner_of_shard = {s: wid for wid, shards in shard_map.items() for s in shards}

        placement = {}
        per_worker = {wid: 0 for wid in c.workers}
        per_worker_sum = {wid: 0.0 for wid in c.workers}
        entry_ports = [c.port] + [w.port for w in c.workers.values()]
        value = 0.0
        for key in KEYS:
            seen = set()
            # Twice through the control node, then once through every worker.
            for port in [c.port] + entry_ports:
                value += 1.0
                wid, part = self.insert_via(port, key, value, "routing")
                seen.add((wid, part))
                per_worker[wid] += 1
                per_worker_sum[wid] += value
            self.assertEqual(len(seen), 1, "key %r landed on %s" % (key, seen))
            wid, part = seen.pop()
            self.assertTrue(0 <= part < 12, part)
            self.assertEqual(owner_of_shard[part], wid, "partition %d is held by %s, not %s" %
                             (part, owner_of_shard[part], wid))
            placement[key] = (wid, part)
        # Twenty-odd keys over 12 shards use more than one worker.
        self.assertGreater(len({w for w, _ in placement.values()}), 1, placement)

        # The data sits only on the owner: each worker's /compute sees exactly its points.
        for wid in c.workers:
            out = c.compute(wid, {"metric": "routing", "aggregations": ["count", "sum"]})
            self.assertEqual(out["results"]["count"], per_worker[wid], (wid, out))
            self.assertEqual(out["results"]["sum"], per_worker_sum[wid], (wid, out))
            self.assertEqual(out.get("worker_node"), wid)

        # A per-key query finds every copy of every key.
        n_entries = len(entry_ports) + 1
        for key in KEYS[:10]:
            a = c.analytics_ok(metric="routing", partition_key=key)
            self.assertEqual(a["count"], n_entries, (key, a))

    def test_batch_through_worker_is_split_to_owners(self):
        c = self.c
        pts = [{"partition_key": k, "value": 1.0, "metric": "wbatch"} for k in KEYS]
        # Where does each key live? Ask the control node with single inserts of another metric.
        placement = {k: self.insert_via(c.port, k, 0.0, "wbatch-probe")[0] for k in KEYS}
        for wid, w in c.workers.items():
            r = R.post(w.port, "/insert", pts)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json().get("inserted"), len(KEYS), r.json())
        for wid in c.workers:
            out = c.compute(wid, {"metric": "wbatch", "aggregations": ["count"]})
            expected = 3 * sum(1 for k in KEYS if placement[k] == wid)
            self.assertEqual(out["results"]["count"], expected, (wid, out))
        self.assertEqual(c.count(metric="wbatch"), 3 * len(KEYS))

    def test_metrics_series_routing_is_stable(self):
        c = self.c
        m = {"key": "mem", "value": 1.0, "tags": {"host": "h1", "datacenter": "dc"}}
        first = None
        for _ in range(5):
            r = R.post(c.port, "/metrics", m)
            self.assertEqual(r.status, 200, r)
            got = (r.json()["worker_node"], r.json()["partition"])
            first = first or got
            self.assertEqual(got, first)
        out = c.compute(first[0], {"metric": "mem", "aggregations": ["count"]})
        self.assertEqual(out["results"]["count"], 5)
        for wid in c.workers:
            if wid != first[0]:
                self.assertEqual(c.compute(wid, {"metric": "mem"})["count"], 0)


if __name__ == "__main__":
    R.main()
