"""`raftmetrics local`: starts a control node and workers as child processes,
prints the URLs, serves inserts and queries, stops every child on SIGINT (ports
closed, no process left), and a second start finds the data it left."""
import os
import signal
import subprocess
import time
import unittest

import rmtest as R


class LocalTest(unittest.TestCase):
    def setUp(self):
        self.dir = R.make_temp_dir("rm-local-")
        self.data = os.path.join(self.dir, "data")
        self.port, self.wport = R.local_ports(2)
        self.log = os.path.join(self.dir, "local.log")
        R.add_log(self.log)
        self.proc = None

    def tearDown(self):
        R.DEFAULT_HEADERS.pop("Authorization", None)
        if self.proc is not None:
            R.kill_proc(self.proc)

    def token(self):
        """The token `local` generated (None until it has written it)."""
        try:
            with open(os.path.join(self.data, "token")) as f:
                return f.read().strip() or None
        except OSError:
            return None

    def start_local(self):
        argv = [R.BINARY, "local", "--port", str(self.port), "--worker-port", str(self.wport),
                "--workers", "2", "--data", self.data]
        # If this test process dies, `local` gets SIGTERM and stops its children itself.
        self.proc = R.spawn(argv, self.log, cwd=self.dir, parent_death_signal=signal.SIGTERM)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("raftmetrics local exited with %s" % self.proc.returncode)
            token = self.token()
            if token is None:
                return False
            with open(self.log, "rb") as f:  # the banner comes once writes are taken
                if b"Press Ctrl-C to stop." not in f.read():
                    return False
            R.DEFAULT_HEADERS.update(R.bearer(token))
            r = R.get(self.port, "/health", timeout=2.0)
            h = r.json()
            return (h.get("cluster_ready") and h["worker_nodes"] == {"total": 2, "healthy": 2}) and h
        h = R.wait_until(ready, 30.0, 0.05, "the local cluster to be ready")
        kids = R.descendants_of(self.proc.pid)
        return h, kids

    def stop_with(self, sig, kids):
        os.kill(self.proc.pid, sig)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.fail("raftmetrics local did not exit after signal %d" % sig)
        deadline = time.monotonic() + 5
        for _ in range(200):
            left = [k for k in kids if R.pid_alive(k)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(left, [], "child processes left running: %r" % left)
        for port in (self.port, self.wport, self.wport + 1):
            self.assertFalse(R.port_accepts(port), "port %d still open" % port)
        return rc

    def test_local_cluster_lifecycle(self):
        h, kids = self.start_local()
        self.assertEqual(len(kids), 3, "expected control + 2 workers as children, got %r" % kids)
        self.assertEqual(sorted(w["address"] for w in h["workers"]),
                         sorted("127.0.0.1:%d" % p for p in (self.wport, self.wport + 1)))
        with open(self.log, "rb") as f:
            banner = f.read().decode("utf-8", "replace")
        self.assertIn("http://127.0.0.1:%d" % self.port, banner)
        self.assertIn("http://127.0.0.1:%d" % self.wport, banner)
        self.assertIn("/insert", banner)
        self.assertIn("/analytics", banner)

        # A token was generated, printed and written to <data>/token (owner-only);
        # without it every node refuses requests.
        token = self.token()
        self.assertRegex(token, r"^[0-9a-f]{32}$")
        self.assertIn(token, banner)
        self.assertEqual(os.stat(os.path.join(self.data, "token")).st_mode & 0o077, 0)
        for p in (self.port, self.wport, self.wport + 1):
            r = R.get(p, "/health", headers={"Authorization": None})
            self.assertEqual(r.status, 401, r)
            self.assertEqual(r.json()["details"]["token_status"], "missing", r)
        # The nodes share a generated cluster secret: the user token is refused
        # on node-to-node endpoints.
        r = R.post(self.wport, "/internal/map", {})
        self.assertEqual(r.status, 403, r)

        # Serves: insert through the control node, query back.
        pts = [{"partition_key": "local-%d" % i, "value": float(i)} for i in range(30)]
        r = R.post(self.port, "/insert", pts)
        self.assertEqual(r.status, 200, r)
        r = R.post(self.port, "/metrics", {"key": "cpu_usage", "value": 75.5,
                                           "tags": {"host": "server-1", "datacenter": "us-west"}})
        self.assertEqual(r.status, 200, r)
        a = R.get(self.port, "/analytics").json()
        self.assertEqual(a["count"], 31, a)
        self.assertFalse(a["is_partial"], a)
        for p in (self.wport, self.wport + 1):
            self.assertEqual(R.get(p, "/health").status, 200)
        for sub in ("control", "worker-1", "worker-2"):
            self.assertTrue(os.path.isdir(os.path.join(self.data, sub)), os.listdir(self.data))
        # Points acknowledged after the last read wait in the shards' write
        # buffers (their command logs); a clean stop writes them to DuckDB.
        more = [{"partition_key": "late-%d" % i, "value": 1.0} for i in range(10)]
        self.assertEqual(R.post(self.port, "/insert", more).status, 200)
        logs = [os.path.join(self.data, w, f) for w in ("worker-1", "worker-2")
                for f in os.listdir(os.path.join(self.data, w)) if f.endswith(".wlog")]
        self.assertGreater(sum(os.path.getsize(f) for f in logs), 0, logs)

        # Ctrl-C stops everything.
        rc = self.stop_with(signal.SIGINT, kids)
        self.assertEqual(rc, 0)
        self.proc = None
        self.assertEqual([f for f in logs if os.path.exists(f) and os.path.getsize(f) > 0], [])

        # A second start finds the data, and keeps the token.
        h, kids = self.start_local()
        self.assertEqual(self.token(), token)
        self.assertEqual(len(kids), 3, kids)
        deadline = time.monotonic() + 15
        a = None
        for _ in range(500):
            r = R.get(self.port, "/analytics")
            a = r.json() if r.status == 200 else None
            if (a and not a["is_partial"] and a["count"] == 41) or time.monotonic() > deadline:
                break
            time.sleep(0.03)
        self.assertEqual(a and a["count"], 41, a)
        self.assertEqual(R.get(self.port, "/analytics", {"metric": "cpu_usage"}).json()["average"], 75.5)

        # SIGTERM works too.
        self.stop_with(signal.SIGTERM, kids)
        self.proc = None

    def test_local_stops_everything_when_a_node_dies(self):
        _, kids = self.start_local()
        self.assertEqual(len(kids), 3, kids)
        victim = kids[0]
        os.kill(victim, signal.SIGKILL)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.fail("raftmetrics local kept running after a node died")
        R.wait_until(lambda: not any(R.pid_alive(k) for k in kids), 5.0, what="every child to exit")
        for port in (self.port, self.wport, self.wport + 1):
            self.assertFalse(R.port_accepts(port), "port %d still open" % port)
        self.proc = None


if __name__ == "__main__":
    R.main()
