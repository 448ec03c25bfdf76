"""A worker whose disk fills up: the write that does not fit gets seed 001's
storage error (507 STORAGE_ERROR, storage_type duckdb, operation insert, reason
disk_full, available_space), every point acknowledged before it stays stored,
and the node keeps answering queries. The worker's DB_PATH is a small tmpfs
mounted in a private mount namespace (`unshare -m`), so nothing leaks onto the
machine; skipped where that needs privileges we do not have."""
import os
import random
import shutil
import subprocess
import unittest

import rmtest as R

TMPFS_SIZE = "12m"


def can_mount_tmpfs():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False, "needs root and unshare(1) to mount a private tmpfs"
    d = R.make_temp_dir("rm-tmpfs-probe-")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs -o size=1m tmpfs %s" % d], capture_output=True, timeout=30)
    if r.returncode != 0:
        return False, "cannot mount tmpfs in a mount namespace: %s" % r.stderr.decode(errors="replace")
    return True, None


class TmpfsWorker(R.Node):
    """A worker whose DB_PATH is a fresh tmpfs of TMPFS_SIZE in its own mount namespace."""

    def start(self):
        os.makedirs(self.db_path, exist_ok=True)
        inner = " ".join("'%s'" % a for a in [R.BINARY, self.role] + list(self.args))
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                "mount -t tmpfs -o size=%s tmpfs '%s' && exec %s" % (TMPFS_SIZE, self.db_path, inner)]
        self.proc = R.spawn(argv, self.log_path, env=self.env)
        return self


class DiskFullTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ok, why = can_mount_tmpfs()
        if not ok:
            raise unittest.SkipTest(why)
        cls.c = R.Cluster(workers=1, shards=2, name="diskfull")
        w = cls.c.workers["worker-1"]
        cls.c.workers["worker-1"] = TmpfsWorker(w.role, w.node_id, w.port, w.db_path, w.log_path, w.args, w.env)
        cls.c.start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def test_full_disk_is_507_and_loses_nothing_acknowledged(self):
        rng = random.Random(7)
        acked = 0
        failure = None
        for batch in range(400):
            pts = [{"partition_key": "disk-%d-%d" % (batch, i), "value": rng.random() * 1e9}
                   for i in range(2000)]
            r = self.c.insert(pts)
            if r.status == 200:
                acked += r.json()["inserted"]
                continue
            failure = r
            break
        self.assertIsNotNone(failure, "the %s tmpfs never filled up (%d points stored)" % (TMPFS_SIZE, acked))
        b = R.assert_error_shape(self, failure, 507, "STORAGE_ERROR")
        d = b["details"]
        self.assertEqual(d["storage_type"], "duckdb", b)
        self.assertEqual(d["operation"], "insert", b)
        self.assertEqual(d["reason"], "disk_full", b)
        self.assertIn("available_space", d, b)
        self.assertTrue(d["failed_shards"], b)
        # Everything acknowledged is still there, and queries are answered.
        a = self.c.analytics_ok()
        self.assertFalse(a["is_partial"], a)
        self.assertEqual(a["count"], acked + d["stored_points"], (a, d))
        self.assertEqual(R.get(self.c.workers["worker-1"].port, "/health").status, 200)
        # The worker's own /insert says the same.
        r = R.post(self.c.workers["worker-1"].port, "/insert",
                   [{"partition_key": "w-%d" % i, "value": rng.random()} for i in range(20000)])
        if r.status != 200:
            R.assert_error_shape(self, r, 507, "STORAGE_ERROR")


if __name__ == "__main__":
    R.main()
