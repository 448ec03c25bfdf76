"""What a new user hits in the first hour (issue 19): /health answers 200 only
once a write would be taken (control and worker), the `local` banner appears
only then, and the command line tells its version and the settings people
tune first."""
import subprocess
import unittest

import rmtest as R


def points_for_every_shard(n=200):
    # 200 partition keys land on every one of 8 or 16 shards (xxHash3).
    return [{"partition_key": "first-hour-%d" % i, "value": float(i)} for i in range(n)]


class HealthMeansReadyTest(unittest.TestCase):
    def test_control_health_is_503_until_a_write_would_be_taken(self):
        c = R.Cluster(workers=3, shards=8, name="ready", control_args=["--replication-factor", "3"])
        try:
            # The control node alone: no worker, nothing placed.
            c.control.start()
            c.control.wait_listening()
            r = R.get(c.port, "/health")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json()["status"], "starting", r)
            self.assertFalse(r.json()["cluster_ready"], r)
            self.assertIn("not placed", r.json()["reason"], r)
            for w in c.workers.values():
                w.start()
            # The first 200 means every shard group has a leader: the write
            # right after it must be taken, with no retry.
            seen = []

            def up():
                r = R.get(c.port, "/health", timeout=2.0)
                self.assertIn(r.status, (200, 503), r)
                seen.append(r.json()["status"])
                if r.status == 503:
                    self.assertIn("reason", r.json(), r)
                    return False
                return True
            R.wait_until(up, 60.0, 0.02, "control /health to answer 200")
            r = R.post(c.port, "/insert", points_for_every_shard())
            self.assertEqual(r.status, 200, r)
            h = R.get(c.port, "/health").json()
            self.assertTrue(h["cluster_ready"], h)
            self.assertEqual(h["shards_without_leader"], [], h)
            self.assertIn("starting", seen)
        finally:
            c.stop()

    def test_worker_health_is_503_until_it_has_the_cluster_map(self):
        c = R.Cluster(workers=1, shards=4, name="worker-ready")
        try:
            w = c.workers["worker-1"]
            w.start()
            w.wait_listening()
            r = R.get(w.port, "/health")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json()["status"], "starting", r)
            self.assertIn("cluster map", r.json()["reason"], r)
            c.control.start()
            R.wait_until(lambda: R.get(w.port, "/health", timeout=2.0).status == 200, 30.0,
                         what="the worker's /health to answer 200")
            self.assertEqual(R.get(w.port, "/health").json()["status"], "healthy")
        finally:
            c.stop()


class LocalBannerTest(unittest.TestCase):
    def test_banner_appears_once_writes_are_taken(self):
        # Three workers: replication factor 3, so every shard needs an elected leader.
        with R.Local(workers=3, name="rm-banner-") as local:
            auth = R.bearer(local.token)
            r = R.post(local.port, "/insert", points_for_every_shard(), headers=auth)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(R.get(local.port, "/health", headers=auth).status, 200)


class CommandLineTest(unittest.TestCase):
    def run_binary(self, *args):
        p = subprocess.run([R.BINARY] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def test_version_names_duckdb_and_raft(self):
        rc, out = self.run_binary("--version")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"^raftmetrics \d+\.\d+\.\d+")
        self.assertIn("DuckDB v1.4.4", out)
        self.assertRegex(out, r"raft 0\.22\.1 \(libuv \d+\.\d+\.\d+\)")

    def test_local_help_lists_the_settings_tuned_first(self):
        rc, out = self.run_binary("local", "--help")
        self.assertEqual(rc, 0, out)
        for flag, env in (("--rate-limit", "RATE_LIMIT_PER_MINUTE"), ("--query-timeout-ms", "QUERY_TIMEOUT_MS"),
                          ("--workers", None), ("--replication-factor", "REPLICATION_FACTOR")):
            self.assertIn(flag, out)
            if env:
                self.assertIn(env, out)
        self.assertIn("passes through from the environment", out)

    def test_local_passes_its_settings_to_every_node(self):
        with R.Local(args=["--rate-limit", "3"], name="rm-local-flags-") as local:
            auth = R.bearer(local.token)
            codes = [R.get(local.port, "/analytics", headers=auth).status for _ in range(5)]
            self.assertIn(429, codes, codes)


if __name__ == "__main__":
    R.main()
