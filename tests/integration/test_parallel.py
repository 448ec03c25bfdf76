"""Many clients in parallel: 8 threads x 5,000 points in batches of 500 (JSON
array, {"points"}, NDJSON, protobuf Points and SeriesPoints) over shared keys;
every acknowledged point is stored exactly once: exact total count and sum,
while concurrent queries keep answering complete."""
import threading
import time
import unittest

import rmtest as R

THREADS = 8
POINTS_PER_THREAD = 5000
BATCH = 500
KEYS = ["par-%d" % i for i in range(64)]
BASE_US = 1705752000 * 1000000  # 2024-01-20T12:00:00Z


def value_of(t, i):
    return float((t * POINTS_PER_THREAD + i) % 1000) * 0.25  # exact in binary


def make_batch(t, start):
    idx = range(start, start + BATCH)
    if t < 6:
        pts = [{"partition_key": KEYS[(i * 7 + t) % len(KEYS)], "value": value_of(t, i), "metric": "par",
                "timestamp": "2024-01-20T12:%02d:%02dZ" % (i // 60 % 60, i % 60)} for i in idx]
        if t in (0, 1):
            return pts, {}, None
        if t in (2, 3):
            return {"points": pts}, {}, None
        return None, {}, pts  # NDJSON
    if t == 6:
        payload = R.enc_insert_request([R.enc_point(KEYS[(i * 7 + t) % len(KEYS)], value_of(t, i),
                                                    timestamp_us=BASE_US + i, metric="par") for i in idx])
        return payload, {"Content-Type": "application/x-protobuf"}, None
    # t == 7: columnar, one series per key in this batch
    by_key = {}
    for i in idx:
        by_key.setdefault(KEYS[(i * 7 + t) % len(KEYS)], []).append(i)
    series = [R.enc_series(metric="par", partition_key=k, tags={"host": k},
                           timestamps_us=[BASE_US + i for i in ii], values=[value_of(t, i) for i in ii])
              for k, ii in by_key.items()]
    return R.enc_insert_request([], series), {"Content-Type": "application/x-protobuf"}, None


class ParallelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = R.Cluster(workers=2, shards=16, name="parallel", write_timeout_ms=10000,
                          query_timeout_ms=5000).start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def test_parallel_clients_exact_count_and_sum(self):
        c = self.c
        errors = []
        acked = [0] * THREADS
        done = threading.Event()
        query_answers = []

        def client(t):
            try:
                for start in range(0, POINTS_PER_THREAD, BATCH):
                    body, hdrs, ndjson = make_batch(t, start)
                    if ndjson is not None:
                        r = R.post_ndjson(c.port, "/insert", ndjson, timeout=30)
                    else:
                        r = R.post(c.port, "/insert", body, hdrs, timeout=30)
                    if r.status != 200:
                        errors.append((t, start, r))
                        return
                    inserted = r.json().get("inserted")
                    if inserted != BATCH:
                        errors.append((t, start, "inserted %r" % inserted))
                        return
                    acked[t] += inserted
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((t, repr(e)))

        def reader():
            for _ in range(2000):
                if done.is_set():
                    return
                try:
                    r = c.analytics(metric="par", timeout=30)
                    query_answers.append((r.status, r.json() if r.status == 200 else r.body))
                except Exception as e:  # noqa: BLE001
                    query_answers.append((None, repr(e)))
                time.sleep(0.02)

        threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
        rt = threading.Thread(target=reader)
        t0 = time.monotonic()
        rt.start()
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        done.set()
        rt.join(30)
        elapsed = time.monotonic() - t0
        self.assertFalse(any(th.is_alive() for th in threads), "client threads hung")
        self.assertEqual(errors, [])
        self.assertEqual(acked, [POINTS_PER_THREAD] * THREADS)

        expected_count = THREADS * POINTS_PER_THREAD
        expected_sum = sum(value_of(t, i) for t in range(THREADS) for i in range(POINTS_PER_THREAD))
        a = c.analytics_ok(metric="par")
        self.assertEqual(a["count"], expected_count, a)
        self.assertFalse(a["is_partial"], a)
        self.assertTrue(R.close_to(a["average"], expected_sum / expected_count, rel=1e-12), a)
        # Exact sum and count from the workers themselves.
        total, count = 0.0, 0
        for wid in c.workers:
            res = c.compute(wid, {"metric": "par", "aggregations": ["count", "sum"]})["results"]
            total += res["sum"]
            count += res["count"]
        self.assertEqual(count, expected_count)
        self.assertEqual(total, expected_sum)
        # Per key as well: nothing moved between keys.
        per_key = {}
        for t in range(THREADS):
            for i in range(POINTS_PER_THREAD):
                k = KEYS[(i * 7 + t) % len(KEYS)]
                per_key[k] = per_key.get(k, 0) + 1
        for k in KEYS[:4]:
            self.assertEqual(c.count(metric="par", partition_key=k), per_key[k], k)
        # Reads during the writes: always answered, never partial, never decreasing.
        self.assertTrue(query_answers, "the reader thread made no query")
        last = 0
        for status, body in query_answers:
            self.assertEqual(status, 200, body)
            self.assertFalse(body["is_partial"], body)
            self.assertGreaterEqual(body["count"], last, query_answers)
            last = body["count"]
        self.assertLess(elapsed, 120)


if __name__ == "__main__":
    R.main()
