#!/usr/bin/env python3
"""bench/raft_ingest.py: what replication costs (issue 5's speed goals).

  1. ingest: the same POINTS points (rm_loadgen, columnar protobuf, BATCH points
     per request over CONNECTIONS connections) into two fresh 3-worker clusters,
     one with RF 1 and one with RF 3, each timed until acknowledged.
     Goal: RF 3 >= 40% of RF 1's points/s.
  2. failover, on the RF 3 cluster with default Raft settings, KILLS times:
     kill -9 the worker that leads the most shards, then time from the kill to
     the next acknowledged write of a key whose shard it led (the control node
     retries the other replicas until its write timeout). The victim restarts
     and rejoins before the next round. Goal: median <= 3 s.
Prints markdown tables. Not a test: nothing here is asserted.

  python3 bench/raft_ingest.py [--binary build-bench/raftmetrics] [--loadgen build-bench/rm_loadgen]
  POINTS=2000000 SHARDS=16 BATCH=50000 CONNECTIONS=4 KILLS=5 python3 bench/raft_ingest.py
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import rmtest as R  # noqa: E402


def total_points(c):
    return R.get(c.port, "/analytics", timeout=30).json().get("count")


def led_shards(worker):
    gs = R.get(worker.port, "/health", timeout=3).json().get("raft_status", {}).get("groups", [])
    return {g["shard"] for g in gs if g["role"] == "leader"}


def cpu_seconds(node):
    """User + system CPU seconds the node's process has used."""
    with open("/proc/%d/stat" % node.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest(args, rf, points, shards):
    c = R.Cluster(workers=3, shards=shards, mode="register", name="bench-rf%d" % rf,
                  control_args=["--replication-factor", str(rf)], write_timeout_ms=30000, query_timeout_ms=30000)
    c.start()
    try:
        # A new cluster's shard groups elect their leaders in the first seconds;
        # ingest is timed from when every group has one (as after any restart).
        if rf > 1:
            R.wait_until(lambda: sum(len(led_shards(w)) for w in c.workers.values()) == shards, 60, 0.1,
                         "every shard to have a leader")
        nodes = [c.control] + list(c.workers.values())
        cpu0 = [cpu_seconds(n) for n in nodes]
        out = subprocess.run([os.path.abspath(args.loadgen), "--url", "127.0.0.1:%d" % c.port, "--points", str(points),
                              "--format", "protobuf", "--batch", os.environ.get("BATCH", "50000"),
                              "--connections", os.environ.get("CONNECTIONS", "4")],
                             check=True, capture_output=True, text=True).stdout
        cpu = [cpu_seconds(n) - c0 for n, c0 in zip(nodes, cpu0)]
        m = re.search(r"elapsed ([\d.]+) s, (\d+) points/s.*errors (\d+)", out)
        if not m or int(m.group(3)) != 0:
            raise RuntimeError("loadgen failed:\n" + out)
        # Until readable: acknowledged points may wait in the shards' write
        # buffers, which the first read writes to DuckDB; that read is timed too.
        # Reads go to the leader each worker last reported; right after the
        # ingest a follower may still be catching up on a hint that is stale.
        t0 = time.monotonic()
        try:
            R.wait_until(lambda: total_points(c) == points, 30, 0.2, "every acknowledged point to be readable")
        except AssertionError:
            raise RuntimeError("RF %d: %s points stored, %d sent" % (rf, total_points(c), points))
        read_secs = time.monotonic() - t0
        secs = float(m.group(1))
        return c, secs, int(m.group(2)), cpu[0], sum(cpu[1:]), points / (secs + read_secs)
    except BaseException:
        c.stop()
        raise


def failover(c, kills):
    """Seconds from each kill -9 of the busiest leader to the next ack of a write to one of its shards."""
    times = []
    key_of_shard = {}
    for i in range(2000):  # a key for every shard, from the insert answers
        if len(key_of_shard) == c.shards:
            break
        key = "failover-%d" % i
        r = R.post(c.port, "/insert", {"partition_key": key, "value": 1.0}, headers={"Idempotency-Key": "probe-" + key})
        key_of_shard.setdefault(r.json()["partition"], key)
    for round_ in range(kills):
        # Every group has a leader and every worker is back before the next kill.
        R.wait_until(lambda: sum(len(led_shards(w)) for w in c.workers.values()) == c.shards, 60, 0.1,
                     "every shard to have a leader")
        victim = max(c.workers.values(), key=lambda w: len(led_shards(w)))
        shard = sorted(led_shards(victim))[0]
        key = key_of_shard[shard]
        victim.kill(signal.SIGKILL)
        t0 = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                r = R.post(c.port, "/insert", {"partition_key": key, "value": 2.0},
                           headers={"Idempotency-Key": "kill-%d" % round_}, timeout=30)
                if r.status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 60:
                raise RuntimeError("no write to shard %d was acknowledged within 60 s of the kill" % shard)
        times.append(time.monotonic() - t0)
        print("  round %d: killed %s (leader of shard %d), next ack after %.2f s (%d requests)"
              % (round_ + 1, victim.node_id, shard, times[-1], attempt))
        victim.start()
        victim.wait_listening()
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "build-bench", "raftmetrics"))
    ap.add_argument("--loadgen", default=os.path.join(HERE, "..", "build-bench", "rm_loadgen"))
    args = ap.parse_args()
    R.BINARY = os.path.abspath(args.binary)
    points = int(os.environ.get("POINTS", "2000000"))
    shards = int(os.environ.get("SHARDS", "16"))
    kills = int(os.environ.get("KILLS", "5"))

    c1, secs1, rate1, ccpu1, wcpu1, readable1 = ingest(args, 1, points, shards)
    c1.stop()
    # The first cluster's files are still being written back to disk: let that
    # finish, so the second run does not share the disk with it.
    os.sync()
    time.sleep(2)
    c3, secs3, rate3, ccpu3, wcpu3, readable3 = ingest(args, 3, points, shards)
    try:
        times = failover(c3, kills)
    finally:
        c3.stop()
    print("\n| ingest (POINTS=%d, SHARDS=%d, 3 workers) | seconds | points/s | until readable, points/s "
          "| CPU s control | CPU s workers |" % (points, shards))
    print("|---|---|---|---|---|---|")
    print("| RF 1 | %.2f | %d | %d | %.2f | %.2f |" % (secs1, rate1, readable1, ccpu1, wcpu1))
    print("| RF 3 | %.2f | %d | %d | %.2f | %.2f |" % (secs3, rate3, readable3, ccpu3, wcpu3))
    print("| RF 3 / RF 1 | | %.2f (goal >= 0.40) | %.2f | | %.2f× |"
          % (rate3 / rate1, readable3 / readable1, wcpu3 / wcpu1))
    print("\n| failover (RF 3, default Raft settings), %d kills | seconds |" % kills)
    print("|---|---|")
    print("| kill -9 of the busiest leader → next ack to one of its shards, median | %.2f (goal <= 3) |"
          % statistics.median(times))
    print("| each | %s |" % ", ".join("%.2f" % t for t in times))


if __name__ == "__main__":
    main()
