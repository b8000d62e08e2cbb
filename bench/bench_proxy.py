"""Service proxy benchmark (issue 9): HAProxy behind Shoal's proxy, beside the same backends direct.

Run (as root): ``.venv/bin/python bench/bench_proxy.py [--services 1000] [--changes 200]
[--kills 5] [--requests 2000] [--wrk-seconds 5]``.  About a minute.

The bench makes its own network namespace ``shoal-pb-…`` and moves itself into it (``setns``)
before it starts anything, so every process it starts and all traffic stay there.  Inside: a
real ``shoal server --disable agent,proxy`` (HTTPS, SQLite) and a real ``shoal agent --runtime
process``, which runs the node agent and the service proxy (its HAProxy, its ClusterIPs on the
namespace's ``lo``).  Services are selectorless with EndpointSlices the bench writes.

The backends are HAProxy processes (one thread each, ``-db``, no master) that answer every
request with ``http-request return`` on 127.0.0.11-13 and 127.0.0.21, port 8080: about
80-95k requests/s on one core here, where Python's http.server does ~3k and busybox httpd
forks per request, so a slow backend would hide the proxy's cost.  They are not the proxy
under test (a separate process with its own two-line configuration).

Printed, each with its goal and verdict, every figure measured in this run:

1. requests/s with ``wrk -t2 -c32`` straight to one backend and through the proxy: a Service
   whose only endpoint is that backend (layer 7, its port is named ``http``; and layer 4, a
   port named ``tcp``), and a Service with all three backends; ratio proxy / direct, goal
   >= 0.8; plus the CPU time per request of the proxy's HAProxy worker and of the backend.
   On a 2-core machine wrk, the backends and the proxy share the same two cores, so the
   ratio is bounded by CPU as much as by the proxy's latency.
2. the latency the proxy adds: ``--requests`` sequential GETs each way, direct and proxied
   interleaved, on one keep-alive connection and on a new connection each; p50 / p99 of each
   and the difference.
3. the time from SIGKILL of a backend to its server showing DOWN on HAProxy's runtime API
   (``show servers state``, polled every 2 ms): without traffic (health checks only) and
   under light traffic (about 200 requests/s on new connections, whose failed requests are
   counted); goal <= 1 s, p50 / max of ``--kills`` each.
4. the time from the client starting an EndpointSlice PATCH to HAProxy's runtime state
   showing it (address, drain / ready, maintenance), ``--changes`` changes cycling add /
   terminating / ready / remove; polled after the PATCH returns, every 1 ms (so an upper
   bound); p50 / p99 / max, goal p99 <= 100 ms.  kube-proxy batches changes for up to 1 s
   (``minSyncPeriod`` 1 s by default) and Kubernetes sets no target.
5. RSS (VmRSS; and the PSS sum) of the agent process and of HAProxy's master and worker, idle
   (no Service of the bench) and with ``--services`` Services of 3 endpoints each (created
   with 16 requests in flight), HAProxy's reloads and CPU use at rest, and the time until the
   proxy's Lease (``proxy.shoal.dev/synced-revision``) reached the last EndpointSlice.

DNS query latency is bench/bench_dns.py's.  Every loop is bounded (count and time); the
namespace, the agent, the server, HAProxy and the backends are stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from shoal.client import proxystatus, resources  # noqa: E402
from shoal.client.errors import NotFoundError  # noqa: E402
from shoal.client.rest import ApiClient  # noqa: E402
from shoal.proxy.slots import CHECK  # noqa: E402
from tests.support.server import ShoalProcess  # noqa: E402

GOAL_RATIO = 0.8
GOAL_KILL_S = 1.0
GOAL_SYNC_P99_MS = 100.0
CLONE_NEWNET = 0x40000000
BACKENDS = {"b1": "127.0.0.11", "b2": "127.0.0.12", "b3": "127.0.0.13", "victim": "127.0.0.21"}
#: An application-like backend: Python's threading http.server (hundreds of microseconds of CPU
#: a request, like a small web app), to show the ratio where the backend does real work.
APP_IP = "127.0.0.31"
APP = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "3"); self.end_headers(); self.wfile.write(b"app")
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 128
S((sys.argv[1], 8080), H).serve_forever()
"""
READY = {"ready": True, "serving": True, "terminating": False}
TERMINATING = {"ready": False, "serving": True, "terminating": True}
BACKEND_CFG = """\
global
    nbthread 1
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend be
    bind {ip}:8080
    http-request return status 200 content-type text/plain string {name}
"""
#: ``show servers state`` admin-state bits (HAProxy's SRV_ADMF_MAINT and SRV_ADMF_DRAIN masks):
#: maintenance forced, inherited or from resolution; drain forced or inherited.  0x04 only
#: records that the configuration said ``disabled``; it is not maintenance by itself.
MAINT_BITS, DRAIN_BITS = 0x01 | 0x02 | 0x20, 0x08 | 0x10


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def enter_netns(name: str) -> None:
    """Move this process (its only thread so far) into network namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
    finally:
        os.close(fd)


# -- processes and HAProxy's runtime API ---------------------------------------------------------

def status_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runtime(sock: Path, command: str, timeout: float = 2.0) -> str:
    """``command`` on an HAProxy CLI socket; a refused connection (the master CLI right after
    a reload) is tried again for up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(timeout)
            conn.connect(str(sock))
            conn.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
        finally:
            conn.close()


def servers(sock: Path, backend: str) -> list[dict[str, str]]:
    """``show servers state BACKEND`` (format 1) as dicts."""
    text = runtime(sock, f"show servers state {backend}".strip())
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((line[2:].split() for line in lines if line.startswith("# be_id")), [])
    # the first line is the format version ("1"), then the header, then one line per server
    return [dict(zip(header, line.split(), strict=False)) for line in lines
            if not line.startswith("#") and len(line.split()) > 5]


def effective(sock: Path, backend: str) -> dict[str, str]:
    """``ip:port`` → ``ready`` / ``drain`` of the servers not in maintenance."""
    out = {}
    for row in servers(sock, backend):
        admin = int(row.get("srv_admin_state", "1"))
        if admin & MAINT_BITS:
            continue
        drain = admin & DRAIN_BITS or row.get("srv_uweight") == "0"
        out[f"{row['srv_addr']}:{row['srv_port']}"] = "drain" if drain else "ready"
    return out


def op_state(sock: Path, backend: str, ip: str) -> int:
    """HAProxy's operational state of the server at ``ip``: 0 stopped (DOWN), 2 running."""
    for row in servers(sock, backend):
        if row.get("srv_addr") == ip and not int(row.get("srv_admin_state", "1")) & MAINT_BITS:
            return int(row["srv_op_state"])
    return -1


def wait_until(what: str, check: Callable[[], bool], timeout: float, every: float = 0.002) -> float:
    """Poll ``check`` until true; the monotonic time it first was, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class Processes:
    """Every process the bench starts, stopped by pid (SIGTERM, then SIGKILL) in ``close``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        log = open(self.base / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)
        finally:
            log.close()
        self.procs[name] = proc
        return proc

    def backend(self, name: str) -> subprocess.Popen[bytes]:
        cfg = self.base / f"{name}.cfg"
        cfg.write_text(BACKEND_CFG.format(ip=BACKENDS[name], name=name))
        proc = self.start(name, ["haproxy", "-db", "-f", str(cfg)])
        wait_until(f"backend {name}", lambda: _answers(BACKENDS[name], 8080), 10, every=0.01)
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)


def _answers(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


# -- HTTP from the bench ---------------------------------------------------------------------------

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def get(conn: socket.socket) -> int:
    """One GET on ``conn``; the status code."""
    conn.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return int(head.split(b" ", 2)[1])


def connect(ip: str, port: int) -> socket.socket:
    conn = socket.create_connection((ip, port), timeout=3)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class Load(threading.Thread):
    """About ``rate`` GETs/s, each on a new connection, until stopped (at most ``seconds``)."""

    def __init__(self, ip: str, port: int, rate: float = 200.0, seconds: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.target, self.every, self.seconds = (ip, port), 1 / rate, seconds
        self.sent = self.failed = 0
        self.done = threading.Event()

    def run(self) -> None:
        ends = time.monotonic() + self.seconds
        while not self.done.wait(self.every) and time.monotonic() < ends:
            self.sent += 1
            try:
                with connect(*self.target) as conn:
                    ok = get(conn) == 200
            except OSError:
                ok = False
            self.failed += not ok


def wrk(url: str, seconds: int) -> tuple[float, int, float]:
    """(requests/s, requests, CPU seconds of wrk) of one ``wrk -t2 -c32`` run."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(["wrk", "-t2", "-c32", f"-d{seconds}s", url], stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if proc.returncode is None and proc.poll() is None:
                proc.kill()
                proc.wait()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    rate = re.search(r"Requests/sec:\s*([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if proc.returncode or not rate or not total or "Non-2xx" in text or "Socket errors" in text:
        raise RuntimeError(f"wrk failed:\n{text}")
    return float(rate.group(1)), int(total.group(1)), usage.ru_utime + usage.ru_stime


# -- the figures -----------------------------------------------------------------------------------

class Bench:
    def __init__(self, base: Path, procs: Processes, client: ApiClient, node: str, args: argparse.Namespace) -> None:
        self.base, self.procs, self.client, self.node, self.args = base, procs, client, node, args
        self.run_dir = base / "agent" / "proxy"
        self.admin = self.run_dir / "admin.sock"
        self.ips: dict[str, str] = {}
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def haproxy_pids(self) -> tuple[int, list[int], list[int]]:
        """Master, current workers, old workers (from the master CLI's ``show proc``)."""
        text = runtime(self.run_dir / "master.sock", "show proc;quit")
        master, section = 0, ""
        current: list[int] = []
        old: list[int] = []
        for line in text.splitlines():
            if line.startswith("#"):
                section = line
                continue
            parts = line.split()
            if len(parts) < 2 or not parts[0].isdigit():
                continue
            if parts[1] == "master":
                master = int(parts[0])
            elif parts[1] == "worker":
                (old if "old" in section else current).append(int(parts[0]))
        return master, current, old

    def memory(self, agent: int) -> dict[str, float]:
        master, workers, old = self.haproxy_pids()
        pids = [agent, master, *workers, *old]
        return {"agent": status_kb(agent) / 1024, "master": status_kb(master) / 1024,
                "worker": sum(status_kb(p) for p in workers) / 1024, "old workers": len(old),
                "pss": sum(pss_kb(p) for p in pids) / 1024}

    # --- set-up ---

    async def service(self, name: str, endpoints: list[tuple[str, dict[str, bool]]], port_name: str = "http",
                      namespace: str = "default") -> int:
        svc = await self.client.create(resources.SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": port_name, "port": 80, "protocol": "TCP"}]}}, namespace)
        self.ips[name] = str(svc["spec"]["clusterIP"])
        piece = await self.client.create(resources.ENDPOINTSLICES, self.slice(name, endpoints, port_name), namespace)
        return int(piece["metadata"]["resourceVersion"])

    def slice(self, name: str, endpoints: list[tuple[str, dict[str, bool]]], port_name: str = "http") -> dict[str, Any]:
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{name}-x", "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "ports": [{"name": port_name, "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [ip], "conditions": c, "nodeName": self.node} for ip, c in endpoints]}

    async def synced(self) -> int:
        try:
            lease = await self.client.get(resources.LEASES, proxystatus.proxy_lease_name(self.node),
                                          proxystatus.PROXY_LEASE_NAMESPACE)
        except NotFoundError:  # not written yet
            return -1
        return int(((lease.get("metadata") or {}).get("annotations") or {}).get(proxystatus.SYNCED_REVISION, -1))

    async def wait_synced(self, revision: int, within: float) -> float:
        deadline = time.monotonic() + within
        while await self.synced() < revision:
            if self.procs.procs["agent"].poll() is not None:
                raise RuntimeError("the agent exited")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the proxy's Lease did not reach revision {revision} in {within}s")
            await asyncio.sleep(0.02)
        return time.monotonic()

    # --- 1 ---

    def throughput(self) -> None:
        seconds = self.args.wrk_seconds
        _, workers, _ = self.haproxy_pids()
        backend = self.procs.procs["b1"].pid
        rows = []
        for label, url in (("direct to backend b1", "http://127.0.0.11:8080/"),
                           ("proxy, 1 endpoint (b1), layer 7", f"http://{self.ips['one']}/"),
                           ("proxy, 1 endpoint (b1), layer 4", f"http://{self.ips['tcp']}/"),
                           ("proxy, 3 endpoints, layer 7", f"http://{self.ips['three']}/"),
                           ("direct to the Python app", f"http://{APP_IP}:8080/"),
                           ("proxy, 1 endpoint (app), layer 7", f"http://{self.ips['app']}/")):
            wrk(url, 1)  # warm-up: connections, caches
            cpu0 = (sum(cpu_seconds(p) for p in workers), cpu_seconds(backend))
            rate, total, wrk_cpu = wrk(url, seconds)
            cpu1 = (sum(cpu_seconds(p) for p in workers), cpu_seconds(backend))
            rows.append((label, rate, (cpu1[0] - cpu0[0]) / total * 1e6, (cpu1[1] - cpu0[1]) / total * 1e6,
                         wrk_cpu / total * 1e6))
        self.say(f"== 1. requests/s, wrk -t2 -c32 -d{seconds}s (goal: proxy / direct >= {GOAL_RATIO}); "
                 "CPU time per request of the proxy's worker, backend b1 and wrk")
        direct = rows[0][1]
        for label, rate, proxy_us, backend_us, wrk_us in rows:
            if label.startswith("direct"):
                direct = rate  # the proxied rows below compare with the direct row above them
            ratio = rate / direct
            tail = "" if label.startswith("direct") else f"  ratio {ratio:.2f}: {verdict(ratio >= GOAL_RATIO)}"
            self.say(f"   {label:32s} {rate:7.0f} req/s  CPU/req: proxy {proxy_us:4.1f} us, b1 {backend_us:4.1f} us,"
                     f" wrk {wrk_us:4.1f} us{tail}")
        direct_us = rows[0][3] + rows[0][4]  # wrk and b1, per request, direct
        proxy_us = rows[1][2]
        self.say(f"   all on {os.cpu_count()} CPUs: CPU-bound, layer 7 can reach at most (wrk + b1) / (wrk + b1 + "
                 f"proxy) = {direct_us / (direct_us + proxy_us):.2f}; behind a backend spending 100 us of CPU "
                 f"a request, {(direct_us + 100) / (direct_us + 100 + proxy_us):.2f} (estimates)")

    # --- 2 ---

    def latency(self) -> None:
        count = self.args.requests
        targets = {"direct": ("127.0.0.11", 8080), "proxy": (self.ips["one"], 80)}
        samples: dict[tuple[str, str], list[float]] = {(t, k): [] for t in targets for k in ("keep", "new")}
        kept = {t: connect(*addr) for t, addr in targets.items()}
        try:
            for _ in range(count):
                for target, addr in targets.items():
                    began = time.perf_counter()
                    assert get(kept[target]) == 200
                    samples[target, "keep"].append(time.perf_counter() - began)
                    began = time.perf_counter()
                    with connect(*addr) as conn:
                        assert get(conn) == 200
                    samples[target, "new"].append(time.perf_counter() - began)
        finally:
            for conn in kept.values():
                conn.close()
        self.say(f"== 2. latency of {count} sequential GETs each (direct and proxied interleaved), ms")
        for kind, label in (("keep", "keep-alive"), ("new", "new connection")):
            direct, proxy = samples["direct", kind], samples["proxy", kind]
            self.say(f"   {label:15s} direct p50 {pct(direct, .5):.3f} p99 {pct(direct, .99):.3f} | proxy p50 "
                     f"{pct(proxy, .5):.3f} p99 {pct(proxy, .99):.3f} | added p50 "
                     f"{pct(proxy, .5) - pct(direct, .5):+.3f} p99 {pct(proxy, .99) - pct(direct, .99):+.3f}")

    # --- 3 ---

    def kills(self) -> None:
        backend, ip = "default.victim.http", BACKENDS["victim"]
        results: dict[str, list[float]] = {"health checks only": [], "under ~200 req/s": []}
        failed = sent = 0
        for label, times in results.items():
            for _ in range(self.args.kills):
                wait_until("the victim UP", lambda: op_state(self.admin, backend, ip) == 2, 10)
                time.sleep(0.3)
                load = Load(self.ips["victim"], 80) if label.startswith("under") else None
                if load is not None:
                    load.start()
                    time.sleep(0.3)
                began = time.monotonic()
                self.procs.kill("victim")
                down = wait_until("the victim DOWN", lambda: op_state(self.admin, backend, ip) == 0, 10)
                times.append(down - began)
                if load is not None:
                    time.sleep(0.3)
                    load.done.set()
                    load.join()
                    sent, failed = sent + load.sent, failed + load.failed
                self.procs.backend("victim")
        self.say(f"== 3. SIGKILL of a backend -> its server DOWN in HAProxy (goal <= {GOAL_KILL_S:.0f} s), "
                 f"{self.args.kills} kills each")
        for label, times in results.items():
            self.say(f"   {label:20s} p50 {pct(times, .5):.0f} ms, max {pct(times, 1):.0f} ms: "
                     f"{verdict(max(times) <= GOAL_KILL_S)}  ({', '.join(f'{t * 1000:.0f}' for t in times)})")
        self.say(f"   requests during the kills under load: {sent} sent, {failed} failed")

    # --- 4 ---

    async def changes(self) -> None:
        backend, stable = "default.churn.http", (BACKENDS["b3"], READY)
        steps = [("add", READY), ("terminating", TERMINATING), ("ready", READY), ("remove", None)]
        times: dict[str, list[float]] = {step: [] for step, _ in steps}
        answered: list[float] = []
        seen0 = self.sync_histogram()
        ends = time.monotonic() + 60
        for index in range(self.args.changes):
            if time.monotonic() > ends:
                break
            step, conditions = steps[index % 4]
            ip = f"127.0.1.{index // 4 % 250 + 1}"
            endpoints = [stable] + ([(ip, conditions)] if conditions is not None else [])
            expected = {f"{e}:8080": "ready" if c["ready"] else "drain" for e, c in endpoints}
            began = time.monotonic()
            await self.client.patch(resources.ENDPOINTSLICES, "churn-x", {"endpoints": self.slice(
                "churn", endpoints)["endpoints"]}, "default")
            answered.append(time.monotonic() - began)
            try:
                applied = wait_until(f"change {index} ({step})",
                                     lambda want=expected: effective(self.admin, backend) == want,  # type: ignore[misc]
                                     10, every=0.001)
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}: HAProxy has {servers(self.admin, backend)}, expected {expected}") from exc
            times[step].append(applied - began)
            await asyncio.sleep(0.01)
        seen1 = self.sync_histogram()
        every = [t for ts in times.values() for t in ts]
        p99 = pct(every, .99)
        self.say(f"== 4. EndpointSlice PATCH start -> applied in HAProxy, {len(every)} changes "
                 f"(goal p99 <= {GOAL_SYNC_P99_MS:.0f} ms; kube-proxy batches changes for up to 1 s)")
        self.say(f"   all            p50 {pct(every, .5):.1f} ms, p99 {p99:.1f} ms, max {pct(every, 1):.1f} ms: "
                 f"{verdict(p99 <= GOAL_SYNC_P99_MS)}")
        for step, ts in times.items():
            self.say(f"   {step:14s} p50 {pct(ts, .5):.1f} ms, p99 {pct(ts, .99):.1f} ms, max {pct(ts, 1):.1f} ms")
        self.say(f"   of which the PATCH itself (until its answer): p50 {pct(answered, .5):.1f} ms, "
                 f"p99 {pct(answered, .99):.1f} ms")
        count, total = seen1[0] - seen0[0], seen1[1] - seen0[1]
        if count:
            self.say(f"   the proxy's own shoal_proxy_sync_seconds (change seen -> applied): {count:.0f} batches, "
                     f"mean {total / count * 1000:.1f} ms")

    def sync_histogram(self) -> tuple[float, float]:
        """(count, sum) of ``shoal_proxy_sync_seconds`` from the agent's /metrics."""
        try:
            with connect("127.0.0.1", 10249) as conn:
                conn.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                text = b"".join(iter(lambda: conn.recv(65536), b"")).decode()
        except OSError:
            return 0.0, 0.0
        values = dict(re.findall(r"^(shoal_proxy_sync_seconds_(?:count|sum)) (\S+)$", text, re.M))
        return (float(values.get("shoal_proxy_sync_seconds_count", 0)),
                float(values.get("shoal_proxy_sync_seconds_sum", 0)))

    def reloads(self) -> int:
        """The master's reload count (``show proc``: ``PID master N [failed: M]``)."""
        text = runtime(self.run_dir / "master.sock", "show proc;quit")
        match = re.search(r"^\d+\s+master\s+(\d+)", text, re.M)
        return int(match.group(1)) if match else -1

    # --- 5 ---

    async def scale(self, agent: int, idle: dict[str, float]) -> None:
        count = self.args.services
        await self.client.create(resources.NAMESPACES, {"metadata": {"name": "bulk"}})
        gate = asyncio.Semaphore(16)
        revisions: list[int] = []
        reloads0 = self.reloads()

        async def one(i: int) -> None:
            async with gate:
                eps = [(BACKENDS[b], READY) for b in ("b1", "b2", "b3")]
                revisions.append(await self.service(f"s{i:04d}", eps, namespace="bulk"))

        began = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        created = time.monotonic()
        synced = await self.wait_synced(max(revisions), 180)
        rows = [row for row in servers(self.admin, "") if row["be_name"].startswith("bulk.")
                and not int(row["srv_admin_state"]) & MAINT_BITS]
        if len(rows) != 3 * count or len({row["be_name"] for row in rows}) != count:
            raise RuntimeError(f"HAProxy serves {len(rows)} bulk endpoints, expected {3 * count}")
        await asyncio.sleep(3)
        full = self.memory(agent)
        reloads = self.reloads() - reloads0
        _, workers, _ = self.haproxy_pids()
        cpu0 = [cpu_seconds(p) for p in (agent, *workers)]
        await asyncio.sleep(3)
        cpu1 = [cpu_seconds(p) for p in (agent, *workers)]
        self.say(f"== 5. {count} Services x 3 endpoints: created in {created - began:.1f} s (16 in flight), "
                 f"in HAProxy {synced - created:.1f} s after the last write ({synced - began:.1f} s in all), "
                 f"{reloads} reloads")
        for label, mem in (("idle (no bench Service)", idle), (f"{count} x 3", full)):
            self.say(f"   RSS {label:24s} agent {mem['agent']:6.1f} MB, HAProxy master {mem['master']:6.1f} MB, "
                     f"worker {mem['worker']:6.1f} MB ({mem['old workers']:.0f} old workers left); "
                     f"PSS sum {mem['pss']:6.1f} MB")
        self.say(f"   at rest with {count} x 3: CPU agent {(cpu1[0] - cpu0[0]) / 3 * 100:.1f} %, "
                 f"HAProxy worker {sum(cpu1[1:]) - sum(cpu0[1:]):.2f} s/3 s = "
                 f"{(sum(cpu1[1:]) - sum(cpu0[1:])) / 3 * 100:.1f} % (health checks of {3 * count} servers: "
                 f"{CHECK.split(' fastinter')[0]})")


async def measure(base: Path, procs: Processes, server: ShoalProcess, args: argparse.Namespace) -> list[str]:
    node = f"bench-{uuid.uuid4().hex[:6]}"
    agent = procs.start("agent", [
        sys.executable, "-m", "shoal", "agent", "--server", server.url, "--token", server.token,
        "--ca-file", str(server.ca_file), "--node-name", node, "--data-dir", str(base / "agent"),
        "--runtime", "process", "--kubelet-port", "0"])
    async with ApiClient.from_kubeconfig(server.kubeconfig) as client:
        bench = Bench(base, procs, client, node, args)
        deadline = time.monotonic() + 60
        while await bench.synced() < 0 or not bench.admin.exists():
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the agent's proxy did not start:\n{(base / 'agent.log').read_text()[-3000:]}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        idle = bench.memory(agent.pid)
        revision = 0
        for name, eps, port_name in (
                ("one", [BACKENDS["b1"]], "http"), ("tcp", [BACKENDS["b1"]], "tcp"),
                ("three", [BACKENDS[b] for b in ("b1", "b2", "b3")], "http"),
                ("victim", [BACKENDS["victim"], BACKENDS["b2"]], "http"), ("churn", [BACKENDS["b3"]], "http"),
                ("app", [APP_IP], "http")):
            revision = max(revision, await bench.service(name, [(ip, READY) for ip in eps], port_name))
        await bench.wait_synced(revision, 30)
        for name in ("one", "three"):
            wait_until(f"{name}'s servers UP", lambda n=name: all(  # type: ignore[misc]
                row["srv_op_state"] == "2" for row in servers(bench.admin, f"default.{n}.http")
                if not int(row["srv_admin_state"]) & MAINT_BITS), 10, every=0.01)
        bench.throughput()
        bench.latency()
        bench.kills()
        await bench.changes()
        await bench.scale(agent.pid, idle)
        return bench.lines


@contextlib.contextmanager
def own_netns() -> Iterator[str]:
    name = f"shoal-pb-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def stop_haproxy(run_dir: Path) -> None:
    """The proxy's HAProxy master, if the agent left it running: by its pid file, if that pid is
    an haproxy of this run directory."""
    try:
        pid = int((run_dir / "haproxy.pid").read_text().split()[0])
        if str(run_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    args = parser.parse_args()
    for tool in ("haproxy", "wrk", "ip"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (scripts/setup.sh installs it)")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    began = time.monotonic()
    with own_netns() as netns, tempfile.TemporaryDirectory(prefix="shoal-pb-") as tmp:
        enter_netns(netns)
        base = Path(tmp)
        procs = Processes(base)
        server = ShoalProcess(base / "server", disable="agent,proxy,dns")
        try:
            for name in BACKENDS:
                procs.backend(name)
            procs.start("app", [sys.executable, "-c", APP, APP_IP])
            wait_until("the Python app backend", lambda: _answers(APP_IP, 8080), 10, every=0.05)
            server.start(timeout=60)
            lines = asyncio.run(measure(base, procs, server, args))
        except BaseException:
            log, kept = base / "agent.log", Path(tempfile.gettempdir()) / f"{netns}-agent.log"
            if log.exists():
                shutil.copy(log, kept)
                print(f"--- the agent's log (kept as {kept}), last 30 lines ---\n" + "\n".join(
                    log.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
            raise
        finally:
            if "agent" in procs.procs:
                procs.kill("agent", signal.SIGTERM)
            stop_haproxy(base / "agent" / "proxy")
            procs.close()
            server.stop()
            log = base / "agent.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            # an old worker says "Proxy NAME stopped" for each frontend and backend at every reload
            stopped = text.count(" stopped (cumulated conns")
            logged = [line for line in text.splitlines() if "runtime driver in use" not in line and (
                " ERROR " in line or " WARNING " in line or "[ALERT]" in line)]
    print(f"({netns}, {os.cpu_count()} CPUs, {time.monotonic() - began:.0f} s in all, {len(lines)} lines above; the "
          f"agent logged {len(logged)} warnings or errors{': ' if logged else ''}{' | '.join(logged[:3])}; HAProxy "
          f"{stopped} 'Proxy ... stopped' lines)")


if __name__ == "__main__":
    main()
