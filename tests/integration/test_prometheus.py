"""GET /metrics read by a real Prometheus: Debian's `prometheus` (installed here
when missing; the test is skipped, saying why, where it cannot be installed)
scrapes a control node and two workers with the bearer token in its scrape
config, and the series come back from Prometheus's query API."""
import json
import os
import shutil
import subprocess
import unittest
import urllib.parse
import urllib.request

import rmtest as R

TOKEN = "prometheus-scrape-token"


def ensure_prometheus():
    """Path of the prometheus binary, installing Debian's package if needed;
    None (with the reason) when it cannot be had."""
    path = shutil.which("prometheus")
    if path:
        return path, None
    if os.geteuid() != 0:
        return None, "prometheus is not installed and we are not root (apt-get install prometheus)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
                           env=env, capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, "cannot install prometheus: %s" % e
    if r.returncode != 0:
        return None, "apt-get install prometheus failed: %s" % r.stderr.decode(errors="replace")[-500:]
    path = shutil.which("prometheus")
    return (path, None) if path else (None, "prometheus still not on PATH after installing")


class PrometheusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.binary, why = ensure_prometheus()
        if cls.binary is None:
            raise unittest.SkipTest(why)
        R.DEFAULT_HEADERS.update(R.bearer(TOKEN))
        cls.c = R.Cluster(workers=2, shards=4, name="prometheus",
                          env={"AUTH_TOKENS": TOKEN, "CLUSTER_SECRET": "prom-test-secret"}).start()
        cls.dir = R.make_temp_dir("rm-prom-")
        cls.port = R.free_port()
        targets = [cls.c.control.address] + [w.address for w in cls.c.workers.values()]
        config = ("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                  "scrape_configs:\n  - job_name: raftmetrics\n"
                  "    authorization:\n      type: Bearer\n      credentials: %s\n"
                  "    static_configs:\n      - targets: [%s]\n") % (TOKEN, ", ".join("'%s'" % t for t in targets))
        cfg = os.path.join(cls.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(config)
        log = os.path.join(cls.dir, "prometheus.log")
        R.add_log(log)
        cls.prom = R.spawn([cls.binary, "--config.file", cfg, "--storage.tsdb.path", os.path.join(cls.dir, "tsdb"),
                            "--web.listen-address", "127.0.0.1:%d" % cls.port], log)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "prom", None) is not None:
            R.kill_proc(cls.prom, grace_s=5.0)
        if getattr(cls, "c", None) is not None:
            cls.c.stop()
        R.DEFAULT_HEADERS.pop("Authorization", None)

    def query(self, promql):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.port, urllib.parse.urlencode({"query": promql}))
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = json.loads(resp.read())
        except OSError:
            return None
        return body["data"]["result"] if body.get("status") == "success" else None

    def test_prometheus_scrapes_every_node_with_the_token(self):
        pts = [{"partition_key": "prom-%d" % i, "value": float(i)} for i in range(25)]
        self.assertEqual(self.c.insert(pts).status, 200)
        R.get(self.c.port, "/aggregate", {"metric": "insert"})

        def scraped():
            up = self.query('up{job="raftmetrics"}')
            return up is not None and len(up) == 3 and all(s["value"][1] == "1" for s in up) and up
        R.wait_until(scraped, 60.0, 0.5, "Prometheus to scrape all three nodes successfully")

        def inserted():
            r = self.query('raftmetrics_points_inserted_total{instance="%s"}' % self.c.control.address)
            return r and float(r[0]["value"][1]) == 25.0
        R.wait_until(inserted, 30.0, 0.5, "raftmetrics_points_inserted_total = 25 in Prometheus")

        workers = self.query("sum(raftmetrics_points_inserted_total{instance!=\"%s\"})" % self.c.control.address)
        self.assertEqual(float(workers[0]["value"][1]), 25.0, workers)
        up = self.query("raftmetrics_worker_up")
        self.assertEqual(sorted(s["metric"]["worker"] for s in up), ["worker-1", "worker-2"], up)
        leaders = self.query("count(raftmetrics_shard_leader{instance=\"%s\"})" % self.c.control.address)
        self.assertEqual(leaders[0]["value"][1], "4", leaders)
        storage = self.query("raftmetrics_storage_bytes")
        self.assertTrue(storage and all(float(s["value"][1]) > 0 for s in storage), storage)
        requests = self.query('raftmetrics_http_requests_total{endpoint="/insert",status="200"}')
        self.assertTrue(requests, "no /insert requests in Prometheus")
        hist = self.query("raftmetrics_http_request_duration_seconds_count")
        self.assertTrue(hist)


if __name__ == "__main__":
    R.main()
