"""Nodes configured by the seed's environment variables alone (NODE_ROLE,
NODE_ID, PORT, DB_PATH, WORKER_HOSTS, CONTROL_HOST) with no subcommand; DB_PATH
holds the node's files; flags win over variables; no role is an error;
REPLICATION_FACTOR accepts only 1."""
import os
import subprocess
import unittest

import rmtest as R

SEED_VARS = ("NODE_ROLE", "NODE_ID", "PORT", "DB_PATH", "WORKER_HOSTS", "CONTROL_HOST", "SHARDS",
             "REPLICATION_FACTOR", "MIN_WORKERS", "BIND_ADDRESS", "ADVERTISE_ADDRESS")


def clean_env(**kv):
    env = {k: None for k in SEED_VARS}
    env.update(kv)
    return env


class EnvTest(unittest.TestCase):
    def setUp(self):
        self.dir = R.make_temp_dir("rm-env-")
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.stop()

    def node(self, role, name, env, args=()):
        n = R.Node(role, name, int(env.get("PORT") or 0), env.get("DB_PATH"),
                   os.path.join(self.dir, name + ".log"), list(args), env, subcommand=False)
        n.proc = None
        self.nodes.append(n)
        return n

    def run_binary(self, args, env, timeout=20):
        full = dict(os.environ)
        for k, v in env.items():
            if v is None:
                full.pop(k, None)
            else:
                full[k] = v
        return subprocess.run([R.BINARY] + list(args), env=full, cwd=self.dir, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, stdin=subprocess.DEVNULL)

    def test_cluster_from_environment_variables(self):
        pc, p1, p2 = R.free_port(), R.free_port(), R.free_port()
        fast = {"HEALTH_INTERVAL_MS": "200", "QUERY_TIMEOUT_MS": "500", "BIND_ADDRESS": "127.0.0.1"}
        w1 = self.node("worker", "worker-1", clean_env(
            NODE_ROLE="worker", NODE_ID="1", PORT=str(p1), DB_PATH=os.path.join(self.dir, "w1"), **fast))
        w2 = self.node("worker", "worker-2", clean_env(
            NODE_ROLE="worker", NODE_ID="2", PORT=str(p2), DB_PATH=os.path.join(self.dir, "w2"),
            CONTROL_HOST="127.0.0.1:%d" % pc, **fast))
        ctl = self.node("control", "control-1", clean_env(
            NODE_ROLE="control", NODE_ID="1", PORT=str(pc), DB_PATH=os.path.join(self.dir, "c"),
            WORKER_HOSTS="127.0.0.1:%d,127.0.0.1:%d" % (p1, p2), SHARDS="6", **fast))
        for n in (w1, w2, ctl):
            n.start()
        for n in (w1, w2, ctl):
            n.wait_listening()

        def ready():
            h = R.get(pc, "/health", timeout=2).json()
            return (h["cluster_ready"] and h["worker_nodes"] == {"total": 2, "healthy": 2}) and h
        h = R.wait_until(ready, 20.0, what="the env-configured cluster to be ready")
        self.assertEqual(h["node_id"], "control-1", h)
        self.assertEqual(h["shards"], 6, h)
        self.assertEqual(sorted(w["id"] for w in h["workers"]), ["worker-1", "worker-2"], h)
        self.assertEqual(sorted(s for w in h["workers"] for s in w["shards"]), list(range(6)), h)
        for port, wid in ((p1, "worker-1"), (p2, "worker-2")):
            self.assertEqual(R.get(port, "/health").json()["node_id"], wid)

        r = R.post(pc, "/insert", [{"partition_key": "env-%d" % i, "value": 2.0} for i in range(20)])
        self.assertEqual(r.status, 200, r)
        a = R.get(pc, "/analytics").json()
        self.assertEqual((a["count"], a["average"], a["is_partial"]), (20, 2.0, False), a)

        # DB_PATH is the directory holding each node's files.
        self.assertTrue(os.path.isfile(os.path.join(self.dir, "c", "cluster_map.json")),
                        os.listdir(os.path.join(self.dir, "c")))
        shard_files = [f for d in ("w1", "w2") for f in os.listdir(os.path.join(self.dir, d))
                       if f.startswith("shard-") and f.endswith(".duckdb")]
        self.assertTrue(shard_files)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data")),
                         "a node wrote outside its DB_PATH: %r" % os.listdir(self.dir))

    def test_flags_win_over_environment(self):
        env_port, flag_port = R.free_port(), R.free_port()
        n = self.node("worker", "worker-7", clean_env(
            NODE_ROLE="control", NODE_ID="9", PORT=str(env_port), DB_PATH=os.path.join(self.dir, "env")),
            args=["worker", "--id", "7", "--port", str(flag_port), "--bind", "127.0.0.1",
                  "--db-path", os.path.join(self.dir, "flag")])
        n.port = flag_port
        n.start()
        n.wait_listening()
        h = R.get(flag_port, "/health").json()
        self.assertEqual(h["node_id"], "worker-7", h)
        self.assertEqual(h["role"], "worker", h)
        self.assertFalse(R.port_accepts(env_port))
        self.assertTrue(os.path.isdir(os.path.join(self.dir, "flag")))

    def test_no_role_is_an_error(self):
        p = self.run_binary([], clean_env(PORT=str(R.free_port())))
        self.assertEqual(p.returncode, 2, p.stdout[-2000:])
        self.assertIn(b"NODE_ROLE", p.stdout)
        p = self.run_binary([], clean_env(NODE_ROLE="janitor"))
        self.assertNotEqual(p.returncode, 0, p.stdout[-2000:])

    def test_replication_factor_out_of_range(self):
        for bad in ("9", "three"):
            port = R.free_port()
            p = self.run_binary([], clean_env(NODE_ROLE="worker", NODE_ID="1", PORT=str(port),
                                              DB_PATH=os.path.join(self.dir, "rf"), REPLICATION_FACTOR=bad))
            self.assertNotEqual(p.returncode, 0, p.stdout[-2000:])
            self.assertIn(b"replication", p.stdout.lower())


if __name__ == "__main__":
    R.main()
