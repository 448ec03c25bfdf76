#!/usr/bin/env python3
"""bench/raft_catchup.py: how long Raft catch-up and replica moves take with real data.

  1. starts 3 workers (RF 3, SHARDS shards, a small Raft log) and a control node
  2. kills worker-3, ingests POINTS points with rm_loadgen (columnar protobuf)
  3. restarts worker-3 and times until every shard on it has the others' count:
     its groups can only catch up by snapshot (DuckDB file + WAL fetched from a peer)
  4. starts worker-4 and times until the rebalancer has moved its share onto it
Prints one markdown table. Not a test: nothing here is asserted.

  python3 bench/raft_catchup.py [--binary build/raftmetrics] [--loadgen build/rm_loadgen]
  POINTS=2000000 SHARDS=4 BATCH=5000 python3 bench/raft_catchup.py   (BATCH: points per request;
  a small batch makes many log entries, so the groups compact and the restart needs a snapshot)
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import rmtest as R  # noqa: E402


def shard_points(port):
    return {s["shard"]: s["points"] for s in R.get(port, "/stats", timeout=10).json()["shards"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "build", "raftmetrics"))
    ap.add_argument("--loadgen", default=os.path.join(HERE, "..", "build", "rm_loadgen"))
    args = ap.parse_args()
    R.BINARY = os.path.abspath(args.binary)
    points = int(os.environ.get("POINTS", "2000000"))
    shards = int(os.environ.get("SHARDS", "4"))
    worker_args = ["--raft-snapshot-threshold", "64", "--raft-snapshot-trailing", "16"]
    c = R.Cluster(workers=3, shards=shards, mode="register", name="bench-catchup",
                  control_args=["--replication-factor", "3"], worker_args=worker_args,
                  write_timeout_ms=10000, query_timeout_ms=10000)
    rows = []
    try:
        c.start()
        R.wait_until(lambda: all(len(shard_points(w.port)) == shards for w in c.workers.values()), 30, 0.2,
                     "every worker to open its shards")
        lagging = c.workers["worker-3"]
        lagging.kill()
        t0 = time.monotonic()
        subprocess.run([os.path.abspath(args.loadgen), "--url", "127.0.0.1:%d" % c.port, "--points", str(points),
                        "--format", "protobuf", "--batch", os.environ.get("BATCH", "5000"), "--connections", "2", "--quiet"], check=True)
        rows.append(("ingest %d points with worker-3 down" % points, time.monotonic() - t0))
        # The two live replicas have applied everything (followers may lag the acks).
        reference = R.wait_until(
            lambda: all(sum(shard_points(c.workers[w].port).values()) == points for w in ("worker-1", "worker-2"))
            and shard_points(c.workers["worker-1"].port), 600, 0.1, "the live replicas to apply every point")

        t0 = time.monotonic()
        lagging.start()
        lagging.wait_listening()
        try:
            R.wait_until(lambda: shard_points(lagging.port) == reference, float(os.environ.get("CATCHUP_S", "600")),
                         0.05, "worker-3 to catch up")
        except AssertionError:
            print("worker-3 has %s, the others %s" % (shard_points(lagging.port), reference))
            print(lagging.log_tail(60))
            raise
        rows.append(("worker-3 restart → every shard caught up (by snapshot)", time.monotonic() - t0))
        with open(lagging.log_path, errors="replace") as f:
            fetched = [int(m.group(1)) for m in re.finditer(r"fetched a (\d+)-byte snapshot", f.read())]
        bytes_note = "%d snapshots, %.1f MB in all" % (len(fetched), sum(fetched) / 1e6)

        port = R.free_port()
        db = os.path.join(c.dir, "worker-4")
        w4 = R.Node("worker", "worker-4", port, db, os.path.join(c.dir, "worker-4.log"),
                    ["--id", "4", "--port", str(port), "--bind", "127.0.0.1", "--raft-port", str(R.free_port()),
                     "--db-path", db, "--control-host", "127.0.0.1:%d" % c.port] + worker_args)
        c.workers["worker-4"] = w4
        t0 = time.monotonic()
        w4.start()

        def balanced():
            st = R.get(c.port, "/status", timeout=10).json()
            held = sum(1 for s in st["shards"] if "worker-4" in s["replicas"])
            return held >= (3 * shards) // 4 and not any("moving" in s for s in st["shards"]) and st
        st = R.wait_until(balanced, 900, 0.2, "replicas to move onto worker-4")
        rows.append(("worker-4 joins → %d replica moves done" % st["rebalancing"]["moves_done"],
                     time.monotonic() - t0))
    finally:
        c.stop()
    print("| step (POINTS=%d, SHARDS=%d, RF 3) | seconds |" % (points, shards))
    print("|---|---|")
    for what, secs in rows:
        print("| %s | %.2f |" % (what, secs))
    print("\nsnapshot transfer: %s" % bytes_note)


if __name__ == "__main__":
    main()
