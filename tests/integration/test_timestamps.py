"""Timestamps and bodies as clients send them, end to end: epoch timestamps on
POST /metrics and /insert (a number or a string; seconds, milliseconds,
microseconds, nanoseconds; the unit from ?precision= or the magnitude) land at
the right instant for GET /aggregate and /analytics, whose from/to (and a
worker's /compute time_window) take epoch times too; NDJSON posted as application/json (or without a Content-Type) is
stored; bad epoch times, a bad precision and malformed JSON get errors that say
what to send instead."""
import json
import unittest

import rmtest as R

VALIDATION = "VALIDATION_ERROR"
INVALID = "INVALID_REQUEST"
JAN20 = 1705764600  # 2024-01-20T15:30:00Z


class TimestampTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = R.Cluster(workers=2, shards=8, name="timestamps").start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def ok(self, resp):
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        self.assertIs(body.get("success"), True, body)
        return body

    def aggregate(self, **params):
        r = R.get(self.c.port, "/aggregate", params)
        self.assertEqual(r.status, 200, "%s -> %r" % (params, r))
        return r.json()

    def count_between(self, metric, start, end, **extra):
        """Points of `metric` from `start` to `end` (both inclusive; start before end), per /aggregate."""
        return self.aggregate(metric=metric, agg="count", **{"from": start, "to": end}, **extra)["aggregations"]["count"]

    def count_at(self, metric, instant, **extra):
        """Points of `metric` at exactly `instant`, per /analytics (which allows from == to)."""
        return self.c.count(metric=metric, **{"from": instant, "to": instant}, **extra)

    # -- epoch timestamps on writes ----------------------------------------

    def test_epoch_timestamps_land_at_their_iso_time(self):
        # Seconds as a number, milliseconds as a string, by magnitude.
        self.ok(self.c.insert({"key": "epoch_m", "value": 1.0, "timestamp": JAN20}, path="/metrics"))
        self.ok(self.c.insert({"key": "epoch_m", "value": 2.0, "timestamp": str(JAN20 + 60) + "123"},
                              path="/metrics"))
        # Nanoseconds with ?precision=ns; fractional seconds; microseconds by magnitude.
        r = R.post(self.c.port, "/metrics?precision=ns",
                   {"key": "epoch_m", "value": 4.0, "timestamp": (JAN20 + 120) * 10**9})
        self.ok(r)
        self.ok(self.c.insert({"key": "epoch_m", "value": 8.0, "timestamp": JAN20 + 180.5}, path="/metrics"))
        self.ok(self.c.insert([{"key": "epoch_m", "value": 16.0, "timestamp": (JAN20 + 240) * 10**6}],
                              path="/metrics"))

        body = self.aggregate(metric="epoch_m", agg="sum,count", window="1m",
                              **{"from": "2024-01-20T15:30:00Z", "to": "2024-01-20T15:35:00Z"})
        got = [(s["start"], s["aggregations"]["sum"]) for s in body["series"]]
        self.assertEqual(got, [("2024-01-20T15:30:00Z", 1.0), ("2024-01-20T15:31:00Z", 2.0),
                               ("2024-01-20T15:32:00Z", 4.0), ("2024-01-20T15:33:00Z", 8.0),
                               ("2024-01-20T15:34:00Z", 16.0)], body)
        # Exactly at the instant: the milliseconds and the half second were kept.
        self.assertEqual(self.count_at("epoch_m", "2024-01-20T15:31:00.123Z"), 1)
        self.assertEqual(self.count_at("epoch_m", "2024-01-20T15:33:00.5Z"), 1)
        self.assertEqual(self.count_at("epoch_m", "2024-01-20T15:33:00.499999Z"), 0)
        self.assertEqual(self.count_at("epoch_m", "2024-01-20T15:32:00Z"), 1)

    def test_precision_names_the_unit_on_insert(self):
        # The same digits in three units: s, ms and us land 1000x apart.
        for precision, key in (("s", "prec-s"), ("ms", "prec-ms"), ("us", "prec-us")):
            self.ok(R.post(self.c.port, "/insert?precision=" + precision,
                           {"partition_key": key, "metric": "prec", "value": 1.0, "timestamp": str(JAN20)}))
        self.assertEqual(self.count_at("prec", "2024-01-20T15:30:00Z", partition_key="prec-s"), 1)
        # 1705764600 ms = 1970-01-20T17:49:24.6Z; 1705764600 us = 1970-01-01T00:28:25.7646Z.
        self.assertEqual(self.count_at("prec", "1970-01-20T17:49:24.6Z", partition_key="prec-ms"), 1)
        self.assertEqual(self.count_at("prec", "1970-01-01T00:28:25.7646Z", partition_key="prec-us"), 1)

    def test_protobuf_timestamp_string_takes_epoch(self):
        payload = R.enc_insert_request([R.enc_point("pb-epoch", 3.0, timestamp=str(JAN20 + 3600), metric="pbe")])
        self.ok(R.post_proto(self.c.port, "/insert", payload))
        self.assertEqual(self.count_at("pbe", "2024-01-20T16:30:00Z"), 1)

    # -- epoch from/to on reads --------------------------------------------

    def test_aggregate_and_analytics_take_epoch_from_and_to(self):
        for i in range(3):
            self.ok(self.c.insert({"key": "epoch_q", "value": float(i), "timestamp": JAN20 + 60 * i},
                                  path="/metrics"))
        # Seconds, as scripts send them; both ends inclusive.
        self.assertEqual(self.count_between("epoch_q", str(JAN20), str(JAN20 + 120)), 3)
        self.assertEqual(self.count_between("epoch_q", str(JAN20 + 1), str(JAN20 + 120)), 2)
        # Milliseconds, as Grafana sends them; and ?precision= on reads.
        self.assertEqual(self.count_between("epoch_q", str(JAN20 * 1000), str((JAN20 + 60) * 1000)), 2)
        self.assertEqual(self.count_between("epoch_q", str(JAN20 * 10**9), str((JAN20 + 59) * 10**9),
                                            precision="ns"), 1)
        a = self.c.analytics_ok(metric="epoch_q", **{"from": str(JAN20 + 60), "to": str((JAN20 + 120) * 1000)})
        self.assertEqual(a["count"], 2, a)
        # A worker's /compute takes them in time_window, with ?precision= too.
        def computed(window, query=""):
            return sum(R.post(w.port, "/compute" + query, {"metric": "epoch_q", "aggregations": ["count"],
                                                           "time_window": window}).json()["results"]["count"]
                       for w in self.c.workers.values())
        self.assertEqual(computed({"from": JAN20, "to": str((JAN20 + 60) * 1000)}), 2)
        self.assertEqual(computed({"from": JAN20 * 1000, "to": "2024-01-20T15:32:00Z"}, "?precision=ms"), 3)
        r = R.post(self.c.workers["worker-1"].port, "/compute",
                   {"metric": "epoch_q", "time_window": {"from": -1, "to": JAN20}})
        body = R.assert_error_shape(self, r, 400, VALIDATION)
        self.assertEqual(R.error_fields(body), ["time_window.from"], body)
        # Bad epoch and precision on reads are VALIDATION_ERRORs naming the parameter.
        r = R.get(self.c.port, "/aggregate", {"metric": "epoch_q", "from": "-5", "to": str(JAN20)})
        body = R.assert_error_shape(self, r, 400, VALIDATION)
        self.assertEqual(R.error_fields(body), ["from"], body)
        self.assertIn("negative", body["details"]["fields"][0]["error"], body)
        r = R.get(self.c.port, "/analytics", {"from": str(JAN20), "precision": "seconds"})
        body = R.assert_error_shape(self, r, 400, VALIDATION)
        self.assertEqual(R.error_fields(body), ["precision"], body)

    # -- errors on writes --------------------------------------------------

    def test_bad_epoch_timestamps_and_precision_are_refused(self):
        before = self.c.count()
        for ts, why in ((-JAN20, "negative"), (str(-JAN20), "negative"), ("1705764600s", None),
                        ("yesterday", None)):
            with self.subTest(ts=ts):
                body = R.assert_error_shape(self, self.c.insert({"key": "bad", "value": 1.0, "timestamp": ts},
                                                                path="/metrics"), 400, VALIDATION)
                self.assertEqual(R.error_fields(body), ["timestamp"], body)
                error = body["details"]["fields"][0]["error"]
                self.assertIn("ISO 8601 timestamp (2024-01-20T15:30:00Z)", error)
                self.assertIn("epoch seconds, milliseconds, microseconds or nanoseconds", error)
                self.assertIn("?precision=", error)
                if why:
                    self.assertIn(why, error)
        # After year 9999 in the unit given.
        r = R.post(self.c.port, "/metrics?precision=s", {"key": "bad", "value": 1.0, "timestamp": JAN20 * 1000})
        body = R.assert_error_shape(self, r, 400, VALIDATION)
        self.assertIn("after 9999-12-31", body["details"]["fields"][0]["error"], body)
        for precision in ("sec", "S", "h"):
            with self.subTest(precision=precision):
                r = R.post(self.c.port, "/metrics?precision=" + precision, {"key": "bad", "value": 1.0})
                body = R.assert_error_shape(self, r, 400, VALIDATION)
                self.assertEqual(R.error_fields(body), ["precision"], body)
                self.assertIn("s, ms, us, ns", body["details"]["fields"][0]["error"])
        self.assertEqual(self.c.count(), before)

    # -- NDJSON without its Content-Type -----------------------------------

    def test_ndjson_posted_as_json_is_stored(self):
        for offset, ctype in ((0, "application/json"), (10, None)):
            with self.subTest(ctype=ctype):
                lines = [json.dumps({"key": "nd_json", "value": float(i), "timestamp": JAN20 + offset + i})
                         for i in range(5)]
                headers = {"Content-Type": ctype} if ctype else {}
                body = self.ok(R.post(self.c.port, "/metrics", "\n".join(lines) + "\n", headers))
                self.assertEqual(body.get("inserted"), 5, body)
        a = self.aggregate(metric="nd_json", agg="count,sum", **{"from": str(JAN20), "to": str(JAN20 + 20)})
        self.assertEqual(a["aggregations"]["count"], 10, a)
        self.assertEqual(a["aggregations"]["sum"], 20.0, a)

    def test_malformed_json_names_the_ndjson_content_type(self):
        before = self.c.count()
        good = json.dumps({"key": "nd_bad", "value": 1.0})
        # Read as NDJSON (its first line is an object), but line 3 is broken.
        r = R.post(self.c.port, "/metrics", good + "\n" + good + "\n" + '{"key": "nd_bad",' + "\n",
                   {"Content-Type": "application/json"})
        body = R.assert_error_shape(self, r, 400, INVALID)
        self.assertEqual(body["details"].get("line"), 3, body)
        self.assertIn("application/x-ndjson", body["details"].get("hint", ""), body)
        # Neither JSON nor NDJSON: objects run together on one line (curl -d drops newlines).
        r = R.post(self.c.port, "/metrics", good + good, {"Content-Type": "application/x-www-form-urlencoded"})
        body = R.assert_error_shape(self, r, 400, INVALID)
        self.assertIn("Content-Type: application/x-ndjson", body["details"].get("hint", ""), body)
        self.assertEqual(self.c.count(), before)


if __name__ == "__main__":
    R.main()
