"""A network partition between hosts (issue 5), with each worker in its own
network namespace and address (ip netns + veth pairs on a bridge; the control
node stays in the root namespace, on the bridge's address).

3 workers, RF 3. The link of the worker that leads the most shards is cut:
the other two elect leaders for its shards and keep serving writes and
complete reads; the cut worker, asked directly, acknowledges no write; when
the link is healed every replica converges on the same per-shard (count, sum),
equal to the ledger of acknowledged points, and the write refused during the
cut is nowhere.

Needs root and `ip netns`; skipped with a message otherwise."""
import json
import os
import subprocess
import time
import unittest
import urllib.parse

import rmtest as R

SHARDS = 4
SFX = os.getpid() % 10000
SUBNET = None  # "10.213.N", picked free on this host by setup_network
BRIDGE = "rmbr%d" % SFX


def ns_name(i):
    return "rmns%d-%d" % (SFX, i)


def veth(i, side):  # side "h": on the bridge, "n": inside the namespace
    return "rmv%d%s%d" % (SFX, side, i)


def ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=10, check=check)


_CREATED = {"bridge": False, "ns": []}


def teardown_network():
    # The root-side veth ends first: a namespace whose process is still exiting
    # can outlive `ip netns del`, and its veth pair with it.
    for i in range(1, len(_CREATED["ns"]) + 1):
        ip("link", "del", veth(i, "h"), check=False)
    for ns in _CREATED["ns"]:
        ip("netns", "del", ns, check=False)
    _CREATED["ns"] = []
    if _CREATED["bridge"]:
        ip("link", "del", BRIDGE, check=False)
        _CREATED["bridge"] = False


R.on_cleanup(teardown_network)  # also on SIGINT/SIGTERM, which skip atexit


def bridge_ip():
    return SUBNET + ".254"


def free_subnet():
    """A 10.213.N.0/24 no interface of this host uses yet."""
    used = ip("-o", "-4", "addr", "show").stdout
    for n in range(20 + os.getpid() % 200, 20 + os.getpid() % 200 + 200):
        candidate = "10.213.%d" % (n % 250 + 1)
        if " %s." % candidate not in used:
            return candidate
    raise OSError("no free 10.213.N.0/24 subnet on this host")


def setup_network(n):
    """A bridge with bridge_ip() and n namespaces, namespace i at SUBNET.(i)."""
    global SUBNET
    SUBNET = free_subnet()
    for name in [BRIDGE] + [veth(i, "h") for i in range(1, n + 1)]:
        if ip("link", "show", name, check=False).returncode == 0:
            raise OSError("interface %s exists already (another run?)" % name)
    ip("link", "add", BRIDGE, "type", "bridge")
    _CREATED["bridge"] = True
    ip("addr", "add", bridge_ip() + "/24", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
    for i in range(1, n + 1):
        ns = ns_name(i)
        ip("netns", "add", ns)
        _CREATED["ns"].append(ns)
        ip("link", "add", veth(i, "h"), "type", "veth", "peer", "name", veth(i, "n"))
        ip("link", "set", veth(i, "n"), "netns", ns)
        ip("link", "set", veth(i, "h"), "master", BRIDGE)
        ip("link", "set", veth(i, "h"), "up")
        ip("-n", ns, "addr", "add", "%s.%d/24" % (SUBNET, i), "dev", veth(i, "n"))
        ip("-n", ns, "link", "set", veth(i, "n"), "up")
        ip("-n", ns, "link", "set", "lo", "up")


def network_unavailable():
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    try:
        setup_network(3)
    except (OSError, subprocess.SubprocessError) as e:
        teardown_network()
        detail = e.stderr.strip() if isinstance(e, subprocess.CalledProcessError) else str(e)
        return "cannot create network namespaces here: %s" % detail
    return None


class NsNode(R.Node):
    """A node started inside a network namespace, reached at `host`."""

    def __init__(self, ns, host, *args, **kwargs):
        R.Node.__init__(self, *args, **kwargs)
        self.ns = ns
        self.host = host

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        # `ip netns exec` execs the binary: the pid is the server's.
        argv = ["ip", "netns", "exec", self.ns, R.BINARY, self.role] + list(self.args)
        self.proc = R.spawn(argv, self.log_path)
        return self

    def wait_listening(self, timeout_s=10.0):
        def up():
            if not self.alive():
                raise AssertionError("%s exited (see %s)" % (self.node_id, self.log_path))
            try:
                return R.http_request(self.port, "GET", "/health", host=self.host, timeout=1).status == 200
            except OSError:
                return False
        R.wait_until(up, timeout_s, what="%s to answer on %s" % (self.node_id, self.address))


def get(node, path, timeout=5):
    return R.http_request(node.port, "GET", path, host=node.host, timeout=timeout).json()


def shard_stats(node):
    return {s["shard"]: (s["points"], s["sum"]) for s in get(node, "/stats")["shards"]}


def led(node):
    return {g["shard"] for g in get(node, "/health")["raft_status"]["groups"] if g["role"] == "leader"}


def request_from_inside(node, method, path, body=None, key=""):
    """A request from inside the node's namespace (to its own address): the only
    way to reach it while its link is cut. Returns (status, parsed body or text)."""
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        "data = sys.argv[3].encode() if sys.argv[2] == 'POST' else None\n"
        "req = urllib.request.Request(sys.argv[1], data=data, method=sys.argv[2],\n"
        "    headers={'Content-Type': 'application/json', 'Idempotency-Key': sys.argv[4]})\n"
        "try:\n"
        "    r = urllib.request.urlopen(req, timeout=15); print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
        "except Exception as e:\n"
        "    print(0); print(repr(e))\n")
    out = subprocess.run(["ip", "netns", "exec", node.ns, "python3", "-c", script,
                          "http://%s%s" % (node.address, path), method, json.dumps(body), key or "-"],
                         capture_output=True, text=True, timeout=30).stdout.split("\n", 1)
    status = int(out[0]) if out and out[0].strip().isdigit() else 0
    text = out[1] if len(out) > 1 else ""
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class NetnsPartitionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        reason = network_unavailable()
        if reason:
            raise unittest.SkipTest(reason)

    @classmethod
    def tearDownClass(cls):
        teardown_network()

    def setUp(self):
        self.dir = R.make_temp_dir("rm-netns-")
        self.cport = R.free_port()
        self.control = R.Node("control", "control-1", self.cport, os.path.join(self.dir, "control"),
                              os.path.join(self.dir, "control.log"),
                              ["--id", "1", "--port", str(self.cport), "--bind", bridge_ip(),
                               "--advertise", "%s:%d" % (bridge_ip(), self.cport), "--raft-port", str(R.free_port()),
                               "--db-path", os.path.join(self.dir, "control"), "--shards", str(SHARDS),
                               "--replication-factor", "3", "--min-workers", "3", "--query-timeout-ms", "1500",
                               "--write-timeout-ms", "4000", "--health-interval-ms", "200"])
        self.workers = {}
        for i in range(1, 4):
            wid = "worker-%d" % i
            host = "%s.%d" % (SUBNET, i)
            port = R.free_port()
            db = os.path.join(self.dir, wid)
            self.workers[wid] = NsNode(ns_name(i), host, "worker", wid, port, db, os.path.join(self.dir, wid + ".log"),
                                       ["--id", str(i), "--port", str(port), "--bind", host,
                                        "--advertise", "%s:%d" % (host, port), "--raft-port", str(R.free_port()),
                                        "--db-path", db, "--control-host", "%s:%d" % (bridge_ip(), self.cport),
                                        "--health-interval-ms", "200"])
        self.control.start()
        for w in self.workers.values():
            w.start()
        self.ledger = {"points": 0, "sum": 0.0}
        self.batch = 0

    def tearDown(self):
        for n in [self.control] + list(self.workers.values()):
            n.stop()
        if not self._outcome_ok():
            for n in [self.control] + list(self.workers.values()):
                print("\n===== %s =====\n%s" % (n.node_id, n.log_tail(40)))

    def _outcome_ok(self):
        result = getattr(self, "_outcome", None)
        errors = getattr(getattr(result, "result", None), "errors", []) + \
            getattr(getattr(result, "result", None), "failures", [])
        return not any(test is self for test, _ in errors)

    def control_get(self, path, params=None):
        return R.http_request(self.cport, "GET", path + ("?" + urllib.parse.urlencode(params) if params else ""),
                              host=bridge_ip(), timeout=10)

    def insert(self, deadline_s):
        """One 20-point batch through the control node, retried with its key
        until acknowledged (then it joins the ledger). Returns seconds taken."""
        self.batch += 1
        key = "netns-%d" % self.batch
        pts = [{"partition_key": "k%d-%d" % (self.batch, i), "value": float(i + 1)} for i in range(20)]
        t0 = time.monotonic()
        while True:
            try:
                r = R.http_request(self.cport, "POST", "/insert", body=pts, host=bridge_ip(), timeout=10,
                                   headers={"Idempotency-Key": key})
                if r.status == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic() - t0, deadline_s, "batch %s not acknowledged in %ss" % (key, deadline_s))
            time.sleep(0.1)
        self.ledger["points"] += 20
        self.ledger["sum"] += sum(p["value"] for p in pts)
        return time.monotonic() - t0

    def test_cut_leader_majority_serves_minority_refuses_heal_converges(self):
        R.wait_until(lambda: self.control_get("/health").json().get("cluster_ready") and
                     self.control_get("/health").json()["worker_nodes"]["healthy"] == 3,
                     40.0, 0.1, "the control node to see 3 healthy workers")
        for w in self.workers.values():
            w.wait_listening(20.0)
        R.wait_until(lambda: sum(len(led(w)) for w in self.workers.values()) == SHARDS, 30.0, 0.1,
                     "every shard group to elect a leader")
        # Raft traffic really goes over the namespaces' addresses.
        for g in get(self.workers["worker-1"], "/status")["groups"]:
            for p in g.get("peers", []):
                addr = p.get("raft_address") or p.get("address", "")
                self.assertTrue(addr.startswith(SUBNET + "."), g)
        for _ in range(10):
            self.insert(20.0)

        victim = max(self.workers.values(), key=lambda w: len(led(w)))
        victim_shards = led(victim)
        self.assertTrue(victim_shards)
        others = [w for w in self.workers.values() if w is not victim]
        ip("link", "set", veth(int(victim.node_id.split("-")[1]), "h"), "down")
        cut_at = time.monotonic()

        # The majority side elects leaders for the victim's shards and serves.
        R.wait_until(lambda: all(s in set().union(*(led(w) for w in others)) for s in victim_shards), 15.0, 0.1,
                     "the majority to elect leaders for shards %s" % sorted(victim_shards))
        elected = time.monotonic() - cut_at
        took = [self.insert(15.0) for _ in range(10)]
        print("new leaders %.2f s after the cut; the next write took %.2f s" % (elected, took[0]))
        a = R.wait_until(lambda: (lambda j: j if j["count"] == self.ledger["points"] else None)(
            self.control_get("/analytics").json()), 15.0, 0.2, "a complete answer from the majority")
        self.assertFalse(a["is_partial"], a)

        # The minority side acknowledges nothing: asked directly, it refuses
        # (no leader reachable within its timeout) in the seed's error shape.
        status, body = request_from_inside(victim, "POST", "/insert",
                                           [{"partition_key": "minority", "value": 1000.0}], "netns-minority")
        self.assertNotEqual(status, 200, body)
        # Its write timeout (5 s) is well inside the in-namespace client's 15 s.
        self.assertEqual(status, 503, body)
        self.assertIs(body.get("error"), True, body)
        self.assertEqual(body.get("code"), "RAFT_ERROR", body)
        self.assertGreaterEqual(body["details"].get("term", 0), 1, body)  # its groups' term, not 0
        print("the cut worker answered %d %s: %s" % (status, body["code"], body["message"]))
        # Cut off from the majority, it steps down everywhere (no contact with a
        # quorum within an election timeout).
        def leads_nothing():
            st, health = request_from_inside(victim, "GET", "/health")
            return st == 200 and not [g for g in health["raft_status"]["groups"] if g["role"] == "leader"]
        R.wait_until(leads_nothing, 10.0, 0.2, "the cut worker to step down")

        # Healing: the victim follows the new leaders and converges.
        ip("link", "set", veth(int(victim.node_id.split("-")[1]), "h"), "up")
        self.insert(20.0)
        expected = (self.ledger["points"], self.ledger["sum"])

        def converged():
            per = [shard_stats(w) for w in self.workers.values()]
            if any(p != per[0] for p in per):
                return None
            total = (sum(v[0] for v in per[0].values()), sum(v[1] for v in per[0].values()))
            return total == expected and per
        R.wait_until(converged, 30.0, 0.2, "every replica to hold the ledger's %d points" % expected[0])
        a = self.control_get("/analytics", {"consistency": "strong"}).json()
        self.assertEqual((a["count"], a["is_partial"]), (expected[0], False), a)


if __name__ == "__main__":
    R.main()
