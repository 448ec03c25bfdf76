"""Clients that announce huge bodies and send little (issue 20, hostile
clients): a request's token is checked from its headers before any body is
read or memory reserved for it; a body's memory grows with the bytes that
arrived; the bytes of bodies still arriving are capped over all connections
(503 above); other clients are served meanwhile."""
import os
import socket
import time
import unittest

import rmtest as R

TOKEN = "tok-hostile-0123456789"
ANNOUNCED = 64 * 1024 * 1024  # each connection claims a 64 MiB body


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def open_body(port, token, first_bytes, announced=ANNOUNCED):
    """A POST /insert announcing `announced` bytes, of which `first_bytes` are sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    auth = "Authorization: Bearer %s\r\n" % token if token else ""
    head = ("POST /insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
            "Content-Length: %d\r\n\r\n" % (auth, announced)).encode()
    s.sendall(head + b"[" + b" " * max(0, first_bytes - 1))
    return s


def read_status(s, timeout=10.0):
    """The status code of the answer on `s` (None if the connection closed without one)."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data[9:12])


SANITIZED = "ASAN_OPTIONS" in os.environ  # RSS says nothing under ASan's quarantine


class HostileClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = {"AUTH_TOKENS": TOKEN, "CLUSTER_SECRET": "hostile-secret"}
        R.DEFAULT_HEADERS.update(R.bearer(TOKEN))
        cls.c = R.Cluster(workers=1, shards=2, name="hostile", env=env,
                          control_args=["--rate-limit", "0"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()
        R.DEFAULT_HEADERS.pop("Authorization", None)

    def test_bodies_without_a_token_are_refused_before_they_are_read(self):
        pid = self.c.control.proc.pid
        before = rss_kb(pid)
        socks = [open_body(self.c.port, None, 70 * 1024) for _ in range(300)]
        try:
            codes = [read_status(s) for s in socks]
            self.assertEqual(set(codes), {401}, codes[:10])
            if not SANITIZED:
                self.assertLess(rss_kb(pid) - before, 64 * 1024, "RSS grew by %d kB" % (rss_kb(pid) - before))
        finally:
            for s in socks:
                s.close()

    def test_slow_bodies_hold_only_what_arrived_and_others_are_served(self):
        pid = self.c.control.proc.pid
        before = rss_kb(pid)
        socks = [open_body(self.c.port, TOKEN, 1) for _ in range(300)]
        try:
            peak = 0
            for second in range(3):
                for s in socks:
                    s.sendall(b" ")  # a byte a second
                started = time.monotonic()
                self.assertEqual(R.get(self.c.port, "/health").status, 200)
                r = R.post(self.c.port, "/insert", {"partition_key": "calm-%d" % second, "value": 1.0})
                self.assertEqual(r.status, 200, r)
                self.assertLess(time.monotonic() - started, 5.0)
                peak = max(peak, rss_kb(pid))
                time.sleep(1.0)
            if not SANITIZED:
                # 300 connections each hold one first piece (64 KiB), not 64 MiB.
                self.assertLess(peak - before, 128 * 1024, "RSS grew by %d kB" % (peak - before))
        finally:
            for s in socks:
                s.close()


    def test_a_refused_upload_still_gets_its_answer(self):
        # A client that sends its whole 2 MB body before reading must see the 401
        # (the server drains what follows its answer), not a reset.
        body = b"[" + b" " * (2 << 20) + b"]"
        for _ in range(3):
            r = R.post(self.c.port, "/insert", body, headers={"Authorization": None,
                                                               "Content-Type": "application/json"})
            R.assert_error_shape(self, r, 401, "AUTH_ERROR")

    def test_a_flood_of_bad_protobuf_strings_does_not_flood_the_log(self):
        # protobuf logs an error for every string field with invalid UTF-8.
        point = R.enc_bytes(1, b"\xff\xfe-not-utf8") + R.enc_double(2, 1.0)
        body = R.enc_bytes(1, point)
        for _ in range(200):
            r = R.post_proto(self.c.port, "/insert", body)
            self.assertEqual(r.status, 400, r)
        with open(self.c.control.log_path, "rb") as f:
            lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if "invalid UTF-8" in l]
        self.assertGreaterEqual(len(lines), 1)
        self.assertLessEqual(len(lines), 10, lines[:3])


class PendingBodyCapTest(unittest.TestCase):
    def test_bodies_over_the_cap_get_503_and_the_node_keeps_serving(self):
        # The cap may not be below the largest body (which could then never be taken).
        env = {"AUTH_TOKENS": TOKEN, "CLUSTER_SECRET": "hostile-secret", "MAX_PENDING_BODY_BYTES": str(1 << 20),
               "MAX_BODY_BYTES": str(512 << 10)}
        R.DEFAULT_HEADERS.update(R.bearer(TOKEN))
        hdrs = R.bearer(TOKEN)
        c = R.Cluster(workers=1, shards=2, name="hostile-cap", env=env)
        try:
            c.start()
            # 40 bodies of which 100 KiB arrived: their pieces pass 1 MiB together.
            socks = [open_body(c.port, TOKEN, 100 * 1024, announced=500 * 1024) for _ in range(40)]
            try:
                refused = []
                for s in socks:
                    s.settimeout(0.5)
                    try:
                        data = s.recv(4096)
                    except socket.timeout:
                        continue
                    if data.startswith(b"HTTP/1.1 503"):
                        refused.append(data)
                self.assertTrue(refused, "no body was refused over the 1 MiB cap")
                self.assertIn(b"Too many request bodies arriving at once", refused[0])
                self.assertIn(b'"code":"UNAVAILABLE"', refused[0])
            finally:
                for s in socks:
                    s.close()
            # Once those connections are gone, a large body fits again.
            big = [{"partition_key": "big-%d" % i, "value": float(i)} for i in range(3000)]
            r = R.wait_until(lambda: (lambda r: r.status == 200 and r)(R.post(c.port, "/insert", big, headers=hdrs)),
                             10.0, 0.2, "a large insert to be taken again")
            self.assertEqual(r.json()["inserted"], 3000)
        finally:
            c.stop()
            R.DEFAULT_HEADERS.pop("Authorization", None)


if __name__ == "__main__":
    R.main()
