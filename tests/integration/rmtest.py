"""Shared helpers for the RaftMetrics integration tests (Python 3 standard library only).

- free ports on 127.0.0.1
- HTTP helpers with timeouts (one connection per request)
- a tiny protobuf encoder/decoder for raftmetrics.v1 (proto/raftmetrics.proto)
- Cluster: a control node and N workers as separate processes in a temp dir,
  with kill -9 / SIGSTOP / SIGCONT / restart of a worker, and cleanup of every
  process started (by pid) on exit, on failure and on SIGTERM/SIGINT
- main(): the entry point of every test_*.py (strips --binary, runs unittest,
  prints node log tails when something failed, exits non-zero on failure)

Every wait in here is bounded in both iterations and time.
"""
import argparse
import atexit
import ctypes
import http.client
import json
import math
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

BINARY = None  # set by main() from --binary

# Short timeouts keep the suite fast. Under AddressSanitizer (`make asan`: a
# Debug build, ASAN_OPTIONS set) the nodes run several times slower: a worker's
# first write opens its shard files and took 2.7 s there for 16 shards, so the
# deadlines the nodes are given scale with it. A forwarded single-point write
# once missed 6 s there (CI, 2026-12-06, both ctest jobs busy): writes get 9 s,
# still under the 10 s the HTTP helpers below wait by default.
SANITIZED = bool(os.environ.get("ASAN_OPTIONS"))
QUERY_TIMEOUT_MS = 1000 * (3 if SANITIZED else 1)
WRITE_TIMEOUT_MS = 1500 * (6 if SANITIZED else 1)
HEALTH_INTERVAL_MS = 200
READY_TIMEOUT_S = 20.0

# ---------------------------------------------------------------------------
# Process bookkeeping: everything started is recorded by pid and killed on exit.
# ---------------------------------------------------------------------------

_PROCS = []      # every subprocess.Popen started by the tests
_CLUSTERS = []   # every Cluster (for log tails on failure)
_TEMP_DIRS = []  # removed at exit
_FAILED = [False]

_libc = None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def _die_with_parent(sig=signal.SIGKILL):
    # Runs in the child between fork and exec: if the test process dies (even by
    # SIGKILL from a ctest timeout), the node gets `sig` instead of leaking.
    def set_pdeathsig():
        if _libc is not None:
            PR_SET_PDEATHSIG = 1
            _libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    return set_pdeathsig


def children_of(pid):
    """Pids whose parent is `pid` (from /proc)."""
    out = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for e in entries:
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e, "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces or parentheses.
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) >= 2 and int(rest[1]) == pid:
            out.append(int(e))
    return out


def descendants_of(pid, limit=256):
    seen, todo = [], [pid]
    while todo and len(seen) < limit:
        p = todo.pop()
        for c in children_of(p):
            if c not in seen:
                seen.append(c)
                todo.append(c)
    return seen


def pid_alive(pid):
    """True if `pid` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2:].split()[0]
    return state not in ("Z", "X")


_STDBUF = shutil.which("stdbuf")


def spawn(args, log_path, env=None, cwd=None, parent_death_signal=signal.SIGKILL):
    """Starts a process with stdout+stderr to log_path; recorded for cleanup.

    parent_death_signal: what the process gets if this test process dies
    (SIGTERM for `raftmetrics local`, so that it stops its own children)."""
    log = open(log_path, "ab")
    full_env = dict(os.environ)
    full_env.setdefault("LOG_LEVEL", "info")
    if env:
        for k, v in env.items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
    if _STDBUF:
        args = [_STDBUF, "-oL", "-eL"] + list(args)  # line-buffered logs survive kill -9
    try:
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=full_env, cwd=cwd,
                             preexec_fn=_die_with_parent(parent_death_signal))
    finally:
        log.close()
    _PROCS.append(p)
    return p


def kill_proc(p, grace_s=0.0):
    """Stops one process we started (and any children it has), by pid. Bounded."""
    if p is None:
        return
    kids = descendants_of(p.pid) if p.poll() is None else []
    if p.poll() is None:
        try:
            if grace_s > 0:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    pass
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)  # a stopped process must be able to die
                os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass
    for k in kids:
        if pid_alive(k):
            try:
                os.kill(k, signal.SIGCONT)
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass


_CLEANUPS = []  # callables run by cleanup_all, after the processes are gone


def on_cleanup(fn):
    """Runs fn at cleanup, also when the test is stopped by a signal (which
    skips atexit handlers): for what a test creates outside its processes."""
    _CLEANUPS.append(fn)


def cleanup_all():
    for p in list(_PROCS):
        kill_proc(p)
    del _PROCS[:]
    for fn in list(_CLEANUPS):
        try:
            fn()
        except Exception as e:  # cleanup must go on
            sys.stderr.write("cleanup %r failed: %s\n" % (fn, e))
    if os.environ.get("RM_KEEP_DIRS"):  # debugging: leave data and node logs behind
        sys.stderr.write("kept: %s\n" % " ".join(_TEMP_DIRS))
    else:
        for d in list(_TEMP_DIRS):
            shutil.rmtree(d, ignore_errors=True)
    del _TEMP_DIRS[:]


atexit.register(cleanup_all)


def _on_signal(signum, _frame):
    cleanup_all()
    os._exit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    try:
        signal.signal(_s, _on_signal)
    except (ValueError, OSError):  # pragma: no cover
        pass


def make_temp_dir(prefix="rmtest-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _TEMP_DIRS.append(d)
    return d


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

_handed_out = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A port that was free on 127.0.0.1 a moment ago (never the same one twice).

    Picked outside the kernel's ephemeral range, so that outgoing connections
    (control -> worker) cannot take it between now and the node's bind."""
    lo, hi = _ephemeral_range()
    ranges = [r for r in ((20000, lo - 1), (hi + 1, 65535), (10000, lo - 1)) if r[1] - r[0] > 1000]
    for _ in range(200 if ranges else 0):
        a, b = ranges[0]
        port = random.randint(a, b)
        if port not in _handed_out and port_is_free(port):
            _handed_out.add(port)
            return port
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port_run(n):
    """n consecutive free ports (for `raftmetrics local --worker-port`)."""
    for _ in range(100):
        base = free_port()
        if base + n > 65535:
            continue
        if all(port_is_free(base + i) for i in range(1, n)):
            for i in range(1, n):
                _handed_out.add(base + i)
            return base
    raise RuntimeError("no run of %d free ports" % n)


def port_accepts(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class Response(object):
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.body = body
        self._json = None

    def json(self):
        if self._json is None:
            self._json = json.loads(self.body.decode("utf-8"))
        return self._json

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:500])


# Headers sent with every request unless a call overrides them (e.g. the
# Authorization of a cluster started with tokens).
DEFAULT_HEADERS = {}


def bearer(token):
    return {"Authorization": "Bearer %s" % token}


def http_request(port, method, path, body=None, headers=None, timeout=10.0, host="127.0.0.1"):
    """One request on a fresh connection. `body` may be bytes, str or a JSON-able object.
    A header given as None is left out (also one of DEFAULT_HEADERS)."""
    hdrs = dict(DEFAULT_HEADERS)
    hdrs.update(headers or {})
    hdrs = {k: v for k, v in hdrs.items() if v is not None}
    if body is not None and not isinstance(body, (bytes, bytearray, str)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def get(port, path, params=None, headers=None, timeout=10.0):
    if params:
        path = path + "?" + urllib.parse.urlencode(params)
    return http_request(port, "GET", path, headers=headers, timeout=timeout)


def post(port, path, body=None, headers=None, timeout=10.0):
    return http_request(port, "POST", path, body=body, headers=headers, timeout=timeout)


def post_ndjson(port, path, points, headers=None, timeout=10.0):
    hdrs = {"Content-Type": "application/x-ndjson"}
    hdrs.update(headers or {})
    body = "\n".join(json.dumps(p) for p in points) + "\n"
    return post(port, path, body, hdrs, timeout)


def post_proto(port, path, payload, headers=None, timeout=10.0, accept_proto=False):
    hdrs = {"Content-Type": "application/x-protobuf"}
    if accept_proto:
        hdrs["Accept"] = "application/x-protobuf"
    hdrs.update(headers or {})
    return post(port, path, bytes(payload), hdrs, timeout)


# ---------------------------------------------------------------------------
# Protobuf (proto3 wire format), just enough for raftmetrics.v1
# ---------------------------------------------------------------------------

WT_VARINT, WT_FIXED64, WT_LEN, WT_FIXED32 = 0, 1, 2, 5


def enc_varint(n):
    if n < 0:
        n += 1 << 64  # int64/int32 negatives: ten-byte two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_key(field, wire_type):
    return enc_varint((field << 3) | wire_type)


def enc_uint(field, n):
    return enc_key(field, WT_VARINT) + enc_varint(n) if n else b""


def enc_bool(field, b):
    return enc_uint(field, 1 if b else 0)


def enc_double(field, d, always=False):
    if d == 0 and not always and not math.isnan(d) and math.copysign(1, d) > 0:
        return b""
    return enc_key(field, WT_FIXED64) + struct.pack("<d", d)


def enc_bytes(field, data, always=False):
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not data and not always:
        return b""
    return enc_key(field, WT_LEN) + enc_varint(len(data)) + data


def enc_packed_varints(field, values):
    if not values:
        return b""
    return enc_bytes(field, b"".join(enc_varint(v) for v in values))


def enc_packed_doubles(field, values):
    if not values:
        return b""
    return enc_bytes(field, b"".join(struct.pack("<d", v) for v in values))


def enc_map(field, mapping):
    out = b""
    for k, v in (mapping or {}).items():
        out += enc_bytes(field, enc_bytes(1, k, True) + enc_bytes(2, v, True), always=True)
    return out


def enc_point(partition_key="", value=0.0, timestamp="", timestamp_us=0, metric="", tags=None):
    """raftmetrics.v1.Point"""
    return (enc_bytes(1, partition_key) + enc_double(2, value) + enc_bytes(3, timestamp) +
            enc_uint(4, timestamp_us) + enc_bytes(5, metric) + enc_map(6, tags))


def enc_series(metric="", partition_key="", tags=None, timestamps_us=(), values=()):
    """raftmetrics.v1.SeriesPoints (packed repeated timestamps and values)"""
    return (enc_bytes(1, metric) + enc_bytes(2, partition_key) + enc_map(3, tags) +
            enc_packed_varints(4, list(timestamps_us)) + enc_packed_doubles(5, list(values)))


def enc_insert_request(points=(), series=()):
    """raftmetrics.v1.InsertRequest from encoded Point / SeriesPoints messages."""
    out = b""
    for p in points:
        out += enc_bytes(1, p, always=True)
    for s in series:
        out += enc_bytes(2, s, always=True)
    return out


def dec_varint(buf, pos):
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def dec_fields(buf):
    """Decodes one message into {field: [(wire_type, raw value), ...]}."""
    fields = {}
    pos = 0
    buf = bytes(buf)
    while pos < len(buf):
        key, pos = dec_varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == WT_VARINT:
            v, pos = dec_varint(buf, pos)
        elif wt == WT_FIXED64:
            v = buf[pos:pos + 8]
            if len(v) != 8:
                raise ValueError("truncated fixed64")
            pos += 8
        elif wt == WT_FIXED32:
            v = buf[pos:pos + 4]
            if len(v) != 4:
                raise ValueError("truncated fixed32")
            pos += 4
        elif wt == WT_LEN:
            n, pos = dec_varint(buf, pos)
            v = buf[pos:pos + n]
            if len(v) != n:
                raise ValueError("truncated length-delimited field")
            pos += n
        else:
            raise ValueError("unsupported wire type %d" % wt)
        fields.setdefault(field, []).append((wt, v))
    return fields


def _last(fields, f, default):
    vals = fields.get(f)
    return vals[-1] if vals else (None, default)


def _as_int(v, signed64=False, signed32=False):
    if signed64 and v >= 1 << 63:
        v -= 1 << 64
    if signed32:
        v &= (1 << 64) - 1
        if v >= 1 << 63:
            v -= 1 << 64
    return v


def _double(fields, f):
    wt, v = _last(fields, f, None)
    if v is None:
        return 0.0
    if wt != WT_FIXED64:
        raise ValueError("field %d: expected fixed64 double, got wire type %d" % (f, wt))
    return struct.unpack("<d", v)[0]


def _varint(fields, f):
    wt, v = _last(fields, f, 0)
    if wt not in (None, WT_VARINT):
        raise ValueError("field %d: expected varint, got wire type %d" % (f, wt))
    return v


def _string(fields, f):
    wt, v = _last(fields, f, b"")
    return bytes(v).decode("utf-8")


def _repeated_varints(fields, f):
    out = []
    for wt, v in fields.get(f, []):
        if wt == WT_VARINT:
            out.append(v)
        elif wt == WT_LEN:  # packed
            pos = 0
            while pos < len(v):
                n, pos = dec_varint(v, pos)
                out.append(n)
        else:
            raise ValueError("field %d: bad wire type %d for repeated varint" % (f, wt))
    return out


def dec_analytics_response(buf):
    """raftmetrics.v1.AnalyticsResponse -> dict shaped like the JSON answer."""
    f = dec_fields(buf)
    has_average = bool(_varint(f, 1))
    return {
        "has_average": has_average,
        "average": _double(f, 2) if has_average else None,
        "is_partial": bool(_varint(f, 3)),
        "total_nodes": _varint(f, 4),
        "responding_nodes": _varint(f, 5),
        "missing_shards": _repeated_varints(f, 6),
        "count": _varint(f, 7),
    }


def dec_insert_response(buf):
    """raftmetrics.v1.InsertResponse -> dict."""
    f = dec_fields(buf)
    return {
        "success": bool(_varint(f, 1)),
        "message": _string(f, 2),
        "worker_node": _string(f, 3),
        "partition": _as_int(_varint(f, 4), signed32=True),
        "inserted": _varint(f, 5),
    }


# ---------------------------------------------------------------------------
# Nodes and clusters
# ---------------------------------------------------------------------------

def wait_until(fn, timeout_s, interval_s=0.05, what="condition"):
    """Polls fn() until it returns a truthy value; bounded in time and count.

    Under AddressSanitizer every wait is 3x longer (the Debug+ASan nodes start,
    open shard files and move replicas several times slower); the time bounds
    the issues set are checked by the normal, optimised pass."""
    if SANITIZED:
        timeout_s *= 3
    deadline = time.monotonic() + timeout_s
    last_exc = None
    max_iter = int(timeout_s / interval_s) + 10
    for _ in range(max_iter):
        try:
            v = fn()
            if v:
                return v
        except (OSError, http.client.HTTPException, ValueError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)
    raise AssertionError("timed out after %.1fs waiting for %s%s" %
                         (timeout_s, what, " (last error: %r)" % last_exc if last_exc else ""))


class Node(object):
    """One raftmetrics process (control or worker) with a fixed port and data dir."""

    def __init__(self, role, node_id, port, db_path, log_path, args, env=None, subcommand=True):
        self.role = role
        self.node_id = node_id    # "worker-1", "control-1"
        self.port = port
        self.db_path = db_path
        self.log_path = log_path
        self.args = args          # flags after the subcommand
        self.env = env or {}
        self.subcommand = subcommand
        self.proc = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        argv = [BINARY] + ([self.role] if self.subcommand else []) + list(self.args)
        with open(self.log_path, "ab") as f:
            f.write(("\n=== start %s: %s\n" % (time.strftime("%H:%M:%S"), " ".join(argv))).encode())
        self.proc = spawn(argv, self.log_path, env=self.env)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_listening(self, timeout_s=10.0):
        def up():
            if not self.alive():
                raise AssertionError("%s exited with %s (see %s)" %
                                     (self.node_id, self.proc.returncode, self.log_path))
            return port_accepts(self.port, 0.2)
        wait_until(up, timeout_s, what="%s to listen on %d" % (self.node_id, self.port))

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            os.kill(self.proc.pid, sig)
            if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    kill_proc(self.proc)

    def stop(self):
        """SIGTERM, then SIGKILL after a grace period."""
        if self.proc is not None:
            kill_proc(self.proc, grace_s=5.0)

    def pause(self):
        """SIGSTOP, then wait (up to 2 s) until every thread has stopped: kill()
        returns before they do, and a fast answer could still leave meanwhile."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 2.0
        for _ in range(400):
            if self._all_threads_stopped() or time.monotonic() > deadline:
                return
            time.sleep(0.005)

    def _all_threads_stopped(self):
        try:
            tasks = os.listdir("/proc/%d/task" % self.proc.pid)
            for t in tasks:
                with open("/proc/%d/task/%s/stat" % (self.proc.pid, t)) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                if state not in ("T", "t"):
                    return False
        except OSError:
            return True  # gone: nothing left to stop
        return True

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def log_tail(self, lines=40):
        return _tail_file(self.log_path, lines)


def local_ports(workers):
    """Ports for `raftmetrics local`: the control node's and a run of worker ports,
    each with its Raft port (HTTP port + 1000, which `local` gives every node)
    free as well."""
    for _ in range(100):
        port, wport = free_port(), free_port_run(workers)
        if all(port_is_free(p + 1000) for p in [port] + [wport + i for i in range(workers)]):
            return port, wport
    raise AssertionError("no free ports for raftmetrics local")


class Local(object):
    """`raftmetrics local` on free ports in a new temp dir, started and waited for
    until its banner appears (it prints it once a write would be taken); a
    context manager that stops it (and its nodes) on exit."""

    def __init__(self, workers=2, args=(), name="rm-local-"):
        self.dir = make_temp_dir(name)
        self.log = os.path.join(self.dir, "local.log")
        add_log(self.log)
        self.port, self.worker_port = local_ports(workers)
        self.proc = spawn([BINARY, "local", "--port", str(self.port), "--worker-port", str(self.worker_port),
                           "--workers", str(workers), "--data", os.path.join(self.dir, "data")] + list(args),
                          self.log, cwd=self.dir, parent_death_signal=signal.SIGTERM)

        def banner():
            if self.proc.poll() is not None:
                raise AssertionError("raftmetrics local exited with %s" % self.proc.returncode)
            with open(self.log, "rb") as f:
                return b"Press Ctrl-C to stop." in f.read()
        try:
            wait_until(banner, 60.0, 0.01, "the local banner")
            with open(os.path.join(self.dir, "data", "token")) as f:
                self.token = f.read().strip()
        except BaseException:
            self.stop()
            raise

    def stop(self):
        kill_proc(self.proc, grace_s=10.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class Cluster(object):
    """A control node and `workers` workers, each a separate process.

    mode: "static"   control gets WORKER_HOSTS
          "register" workers get CONTROL_HOST, control gets --min-workers
          "both"     both at once (a worker named both ways must count once)
    """

    def __init__(self, workers=2, shards=8, mode="static", control_args=(), worker_args=(),
                 env=None, name="cluster", query_timeout_ms=QUERY_TIMEOUT_MS,
                 write_timeout_ms=WRITE_TIMEOUT_MS, health_interval_ms=HEALTH_INTERVAL_MS):
        self.dir = make_temp_dir("rm-%s-" % name)
        self.shards = shards
        self.mode = mode
        self.env = env or {}
        self.workers = {}
        control_port = free_port()
        worker_ports = [free_port() for _ in range(workers)]
        timing = ["--query-timeout-ms", str(query_timeout_ms),
                  "--write-timeout-ms", str(write_timeout_ms),
                  "--health-interval-ms", str(health_interval_ms)]
        for i, port in enumerate(worker_ports, start=1):
            wid = "worker-%d" % i
            args = ["--id", str(i), "--port", str(port), "--bind", "127.0.0.1",
                    "--raft-port", str(free_port()),
                    "--db-path", os.path.join(self.dir, wid)] + timing + list(worker_args)
            if mode in ("register", "both"):
                args += ["--control-host", "127.0.0.1:%d" % control_port]
            self.workers[wid] = Node("worker", wid, port, os.path.join(self.dir, wid),
                                     os.path.join(self.dir, wid + ".log"), args, self.env)
        cargs = ["--id", "1", "--port", str(control_port), "--bind", "127.0.0.1", "--raft-port", str(free_port()),
                 "--db-path", os.path.join(self.dir, "control"), "--shards", str(shards)] + timing
        if mode in ("static", "both"):
            cargs += ["--worker-hosts", ",".join("127.0.0.1:%d" % p for p in worker_ports)]
        if mode == "register":
            cargs += ["--min-workers", str(workers)]
        cargs += list(control_args)
        self.control = Node("control", "control-1", control_port, os.path.join(self.dir, "control"),
                            os.path.join(self.dir, "control.log"), cargs, self.env)
        _CLUSTERS.append(self)

    # -- lifecycle ---------------------------------------------------------

    def start(self, wait=True):
        for w in self.workers.values():
            w.start()
        self.control.start()
        if wait:
            self.wait_ready()
        return self

    def stop(self):
        for n in [self.control] + list(self.workers.values()):
            n.stop()

    def nodes(self):
        return [self.control] + list(self.workers.values())

    def health(self, timeout=5.0):
        r = get(self.control.port, "/health", timeout=timeout)
        # 503 while the cluster cannot take writes yet (its body says why).
        if r.status not in (200, 503):
            raise AssertionError("control /health answered %r" % r)
        return r.json()

    def wait_ready(self, timeout_s=READY_TIMEOUT_S, expect_workers=None):
        """Until cluster_ready and every worker healthy (and every node alive)."""
        n = len(self.workers) if expect_workers is None else expect_workers

        def ready():
            for node in self.nodes():
                if node.proc is not None and not node.alive():
                    raise AssertionError("%s exited with %s:\n%s" %
                                         (node.node_id, node.proc.returncode, node.log_tail(20)))
            h = self.health(timeout=2.0)
            wn = h.get("worker_nodes", {})
            return (h.get("cluster_ready") is True and wn.get("total") == n and
                    wn.get("healthy") == n) and h
        return wait_until(ready, timeout_s, 0.05, "cluster ready with %d healthy workers" % n)

    def worker_healthy(self, wid):
        for w in self.health(timeout=2.0).get("workers", []):
            if w.get("id") == wid:
                return bool(w.get("healthy"))
        return False

    def wait_worker_health(self, wid, healthy, timeout_s=10.0):
        wait_until(lambda: self.worker_healthy(wid) == healthy, timeout_s, 0.05,
                   "%s to be %s" % (wid, "healthy" if healthy else "unhealthy"))

    def shard_map(self):
        """{worker id: [shards]} from control /health."""
        return {w["id"]: sorted(w["shards"]) for w in self.health().get("workers", [])}

    def kill_worker(self, wid, sig=signal.SIGKILL):
        self.workers[wid].kill(sig)

    def pause_worker(self, wid):
        self.workers[wid].pause()

    def resume_worker(self, wid):
        self.workers[wid].resume()

    def restart_worker(self, wid, wait=True):
        w = self.workers[wid]
        if w.alive():
            w.kill()
        w.start()
        w.wait_listening()
        if wait:
            self.wait_worker_health(wid, True)

    def ensure_all_up(self):
        """Restarts dead workers and resumes stopped ones; waits until healthy."""
        for wid, w in self.workers.items():
            if w.alive():
                w.resume()
            else:
                w.start()
        self.wait_ready()

    # -- API shortcuts -----------------------------------------------------

    @property
    def port(self):
        return self.control.port

    def analytics(self, timeout=10.0, **params):
        params = {k: v for k, v in params.items() if v is not None}
        return get(self.port, "/analytics", params, timeout=timeout)

    def analytics_ok(self, **params):
        r = self.analytics(**params)
        if r.status != 200:
            raise AssertionError("/analytics %r answered %r" % (params, r))
        return r.json()

    def count(self, **params):
        return self.analytics_ok(**params)["count"]

    def insert(self, body, headers=None, path="/insert"):
        return post(self.port, path, body, headers)

    def compute(self, wid, body=None, timeout=10.0):
        r = post(self.workers[wid].port, "/compute", body if body is not None else {}, timeout=timeout)
        if r.status != 200:
            raise AssertionError("%s /compute answered %r" % (wid, r))
        return r.json()

    def wait_complete(self, count=None, timeout_s=15.0, **params):
        """Polls /analytics until it answers 200, complete (and with `count` points
        when given). Tolerates 503 and partial answers on the way (restarts)."""
        last = [None]

        def done():
            r = self.analytics(timeout=5.0, **params)
            last[0] = r
            if r.status != 200:
                return False
            a = r.json()
            return (not a["is_partial"] and (count is None or a["count"] == count)) and a
        try:
            return wait_until(done, timeout_s, 0.02, "a complete /analytics %r" % (params,))
        except AssertionError as e:
            raise AssertionError("%s; last answer %r" % (e, last[0]))

    def log_tails(self, lines=40):
        out = []
        for n in self.nodes():
            out.append("----- %s (%s) -----\n%s" % (n.node_id, n.log_path, n.log_tail(lines)))
        return "\n".join(out)


# ---------------------------------------------------------------------------
# Assertions shared by the tests
# ---------------------------------------------------------------------------

def assert_error_shape(tc, resp, status, code=None):
    """The seed 001 error shape: {"error": true, "code", "message", "details"}."""
    tc.assertEqual(resp.status, status, "expected HTTP %d, got %r" % (status, resp))
    ct = resp.header("content-type") or ""
    tc.assertIn("application/json", ct, "error body must be JSON: %r" % resp)
    body = resp.json()
    tc.assertIs(body.get("error"), True, body)
    tc.assertIsInstance(body.get("code"), str, body)
    tc.assertIsInstance(body.get("message"), str, body)
    tc.assertTrue(body.get("message"), body)
    tc.assertIn("details", body, body)
    tc.assertIsInstance(body["details"], dict, body)
    if code is not None:
        tc.assertEqual(body["code"], code, body)
    return body


def error_fields(body):
    """The field names listed in details.fields of a VALIDATION_ERROR."""
    return [f.get("field") for f in body.get("details", {}).get("fields", [])]


def close_to(a, b, rel=1e-9, abs_tol=1e-9):
    return a is not None and b is not None and math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def main():
    global BINARY
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--binary", default=os.environ.get("RAFTMETRICS_BINARY"))
    args, rest = parser.parse_known_args()
    if not args.binary:
        sys.stderr.write("usage: %s --binary /path/to/raftmetrics [unittest args]\n" % sys.argv[0])
        sys.exit(2)
    BINARY = os.path.abspath(args.binary)
    if not os.access(BINARY, os.X_OK):
        sys.stderr.write("not an executable: %s\n" % BINARY)
        sys.exit(2)
    started = time.monotonic()
    prog = unittest.main(module="__main__", argv=[sys.argv[0]] + rest, exit=False, verbosity=1)
    ok = prog.result.wasSuccessful()
    if not ok:
        for c in _CLUSTERS:
            sys.stderr.write("\n===== node logs of %s =====\n%s\n" % (c.dir, c.log_tails()))
        for extra in _EXTRA_LOGS:
            sys.stderr.write("\n===== %s =====\n%s\n" % (extra, _tail_file(extra)))
    cleanup_all()
    sys.stderr.write("%s: %.1fs\n" % (os.path.basename(sys.argv[0]), time.monotonic() - started))
    sys.exit(0 if ok else 1)


_EXTRA_LOGS = []  # other log files to print on failure (e.g. `raftmetrics local`)


def add_log(path):
    _EXTRA_LOGS.append(path)


def _tail_file(path, lines=60):
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "(no log)"
    data = [l for l in data if " TIMING " not in l]  # per-request timing lines drown the rest
    # A sanitizer report is what explains a failure: show it whole (its first 80 lines:
    # the error, the first stacks), then the tail as usual.
    report = next((i for i, l in enumerate(data) if "ERROR: AddressSanitizer" in l or "runtime error:" in l), None)
    if report is not None and report < len(data) - lines:
        return "\n".join(data[report:report + 80] + ["[...]"] + data[-lines:])
    return "\n".join(data[-lines:])
