"""Idempotency-Key: a request sent several times (single point, JSON batch,
protobuf batch, /metrics, through the control node or a worker, concurrently,
and across a kill -9 of the worker) is stored exactly once; without a key every
request is stored."""
import threading
import unittest

import rmtest as R


class IdempotencyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = R.Cluster(workers=2, shards=8, name="idem").start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def send_3_times(self, send, metric, expected_stored):
        before = self.c.count(metric=metric)
        bodies = []
        for attempt in range(3):
            r = send()
            self.assertEqual(r.status, 200, (attempt, r))
            bodies.append(r)
            self.assertEqual(self.c.count(metric=metric), before + expected_stored, "after attempt %d" % attempt)
        return bodies

    def test_single_point_three_times(self):
        body = {"partition_key": "idem-single", "value": 5.0, "metric": "idem1"}
        rs = self.send_3_times(lambda: self.c.insert(body, {"Idempotency-Key": "single-1"}), "idem1", 1)
        first = rs[0].json()
        for r in rs[1:]:
            j = r.json()
            self.assertEqual((j["worker_node"], j["partition"]), (first["worker_node"], first["partition"]))
            self.assertIs(j.get("duplicate"), True, j)
        self.assertNotIn("duplicate", first)

    def test_json_batch_three_times(self):
        batch = [{"partition_key": "idem-b-%d" % i, "value": float(i), "metric": "idem2"} for i in range(25)]
        rs = self.send_3_times(lambda: self.c.insert(batch, {"Idempotency-Key": "batch-1"}), "idem2", 25)
        for r in rs:
            self.assertEqual(r.json().get("inserted"), 25, r.json())
        a = self.c.analytics_ok(metric="idem2")
        self.assertEqual(a["average"], 12.0, a)

    def test_protobuf_batch_three_times(self):
        payload = R.enc_insert_request(
            [R.enc_point("idem-p-%d" % i, 1.0 * i, metric="idem3") for i in range(10)],
            [R.enc_series("idem3", "idem-s", timestamps_us=[1000000 * i + 1 for i in range(20)], values=[2.0] * 20)])
        self.send_3_times(lambda: R.post_proto(self.c.port, "/insert", payload, {"Idempotency-Key": "pb-1"}),
                          "idem3", 30)

    def test_metrics_three_times(self):
        body = {"key": "idem4", "value": 1.5, "tags": {"host": "h"}}
        self.send_3_times(lambda: self.c.insert(body, {"Idempotency-Key": "m-1"}, path="/metrics"), "idem4", 1)

    def test_same_key_through_control_and_workers(self):
        body = [{"partition_key": "idem-w-%d" % i, "value": 1.0, "metric": "idem5"} for i in range(12)]
        hdr = {"Idempotency-Key": "mixed-path-1"}
        ports = [self.c.port] + [w.port for w in self.c.workers.values()]
        for port in ports:
            r = R.post(port, "/insert", body, hdr)
            self.assertEqual(r.status, 200, (port, r))
            self.assertEqual(self.c.count(metric="idem5"), 12)

    def test_without_key_every_request_is_stored(self):
        body = {"partition_key": "idem-none", "value": 1.0, "metric": "idem6"}
        for i in range(3):
            self.assertEqual(self.c.insert(body).status, 200)
        self.assertEqual(self.c.count(metric="idem6"), 3)

    def test_different_keys_are_different_writes(self):
        body = {"partition_key": "idem-diff", "value": 1.0, "metric": "idem7"}
        for i in range(3):
            self.assertEqual(self.c.insert(body, {"Idempotency-Key": "diff-%d" % i}).status, 200)
        self.assertEqual(self.c.count(metric="idem7"), 3)

    def test_concurrent_retries_store_once(self):
        batch = [{"partition_key": "idem-c-%d" % i, "value": 1.0, "metric": "idem8"} for i in range(40)]
        statuses = []

        def send():
            try:
                statuses.append(self.c.insert(batch, {"Idempotency-Key": "concurrent-1"}).status)
            except OSError as e:
                statuses.append(repr(e))

        threads = [threading.Thread(target=send) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(statuses, [200] * 6)
        self.assertEqual(self.c.count(metric="idem8"), 40)

    def test_key_survives_worker_kill9(self):
        batch = [{"partition_key": "idem-k-%d" % i, "value": 1.0, "metric": "idem9"} for i in range(16)]
        hdr = {"Idempotency-Key": "durable-1"}
        self.assertEqual(self.c.insert(batch, hdr).status, 200)
        for wid in list(self.c.workers):
            self.c.kill_worker(wid)
        for wid in list(self.c.workers):
            self.c.workers[wid].start()
        self.c.wait_ready()
        self.c.wait_complete(16, metric="idem9")
        r = self.c.insert(batch, hdr)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.c.count(metric="idem9"), 16)

    def test_overlong_key_rejected(self):
        r = self.c.insert({"partition_key": "idem-long", "value": 1.0, "metric": "idem10"},
                          {"Idempotency-Key": "k" * 300})
        R.assert_error_shape(self, r, 400)
        self.assertEqual(self.c.count(metric="idem10"), 0)


if __name__ == "__main__":
    R.main()
