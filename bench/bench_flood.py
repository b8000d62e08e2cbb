"""Connection-flood benchmark (issue 8 item 9): idle and slow connections against a real server.

Run: ``.venv/bin/python bench/bench_flood.py [--connections 4000] [--sources 16] [--requests 200]
[--compare-src /path/to/other/src]``.

For a real ``shoal server --disable agent,...`` on 127.0.0.1 (HTTPS, SQLite, the production
limits: no flags) started with the common soft limit of 1,024 open files, two scenarios:

* **spread**: ``--connections`` connections from ``--sources`` client addresses
  (127.0.0.2, 127.0.0.3, ...), so the per-address cap does not shed the flood by itself;
* **single address**: the same flood from 127.0.0.1, the address of the normal client too.

Each flood is 75 % connections that complete TLS and send nothing, 25 % slowloris (a header
byte per second).  Printed for each: the server's RSS idle, the peak while the flood is held
and 3 s after the flood's sockets are closed; how many flood connections were open and how
many the server closed; ``--requests`` normal authenticated GETs (half on one keep-alive
connection, half each on a new TLS connection) without and during the flood, p50 / p99.
The verdicts: p99 during the flood < 100 ms, RSS during < 200 MB, RSS after within 20 MB of
idle.  With ``--compare-src`` the spread scenario runs again on a server from that source
tree (e.g. the commit before, as a baseline in the same run).

Every loop is bounded (count and time); all traffic goes to 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.flood import Flood, raise_own_fd_limit, sources
from tests.support.server import QUIET, ShoalProcess

ROOT = Path(__file__).resolve().parents[1]
GOAL_P99_MS = 100.0
GOAL_RSS_MB = 200.0
GOAL_RSS_BACK_MB = 20.0
SERVER_SOFT_FD_LIMIT = 1024


class LimitedProcess(ShoalProcess):
    """A ``shoal server`` started with a soft limit of 1,024 open files, optionally from other sources."""

    src: str = f"{ROOT / 'src'}:{ROOT}"

    def shoal_command(self) -> list[str]:  # type: ignore[override]
        return ["env", f"PYTHONPATH={self.src}", "sh", "-c",
                f'ulimit -Sn {SERVER_SOFT_FD_LIMIT} && exec "$0" -m shoal "$@"', sys.executable]


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except (OSError, RuntimeError):
                return


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def latencies(server: ShoalProcess, count: int, timeout: float = 2.0,
              budget: float = 40.0) -> tuple[list[float], list[float], int]:
    """(keep-alive samples, new-connection samples, failures) of GET default/configmaps:
    ``count`` requests, or fewer when they take more than ``budget`` seconds in all."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    context.check_hostname = False
    headers = {"Authorization": f"Bearer {server.token}"}
    path = "/api/v1/namespaces/default/configmaps?limit=10"
    kept: list[float] = []
    fresh: list[float] = []
    failures = 0
    keep = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=timeout)
    ends = time.monotonic() + budget
    for index in range(count):
        if time.monotonic() > ends:
            break
        reuse = index % 2 == 0
        conn = keep if reuse else http.client.HTTPSConnection("127.0.0.1", server.port, context=context,
                                                                 timeout=timeout)
        began = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except OSError:
            ok = False
            if reuse:
                keep.close()
                keep = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=timeout)
        elapsed = time.perf_counter() - began
        if not reuse:
            conn.close()
        if not ok:
            failures += 1
            elapsed = max(elapsed, timeout)
        (kept if reuse else fresh).append(elapsed)
        time.sleep(0.01)
    keep.close()
    return kept, fresh, failures


@dataclass
class Result:
    label: str
    idle_rss: float
    peak_rss: float
    after_rss: float
    opened: int
    closed_by_server: int
    refused: int
    base: tuple[list[float], list[float], int]
    flood: tuple[list[float], list[float], int]

    def lines(self) -> list[str]:
        bk, bf, bfail = self.base
        fk, ff, ffail = self.flood
        p99 = max(pct(fk, 0.99), pct(ff, 0.99))
        back = self.after_rss - self.idle_rss
        return [
            f"== {self.label}",
            f"   flood: {self.opened} established, {self.closed_by_server} closed by the server while held, "
            f"{self.refused} failed to connect/handshake",
            f"   {len(bk) + len(bf)} requests without flood: keep-alive p50 {pct(bk, .5):.1f} / "
            f"p99 {pct(bk, .99):.1f} ms, "
            f"new connection p50 {pct(bf, .5):.1f} / p99 {pct(bf, .99):.1f} ms, {bfail} failed",
            f"   {len(fk) + len(ff)} requests during flood:  keep-alive p50 {pct(fk, .5):.1f} / "
            f"p99 {pct(fk, .99):.1f} ms, "
            f"new connection p50 {pct(ff, .5):.1f} / p99 {pct(ff, .99):.1f} ms, {ffail} failed",
            f"   RSS idle {self.idle_rss:.1f} MB, peak during {self.peak_rss:.1f} MB, after close "
            f"{self.after_rss:.1f} MB ({back:+.1f} MB)",
            f"   p99 < {GOAL_P99_MS:.0f} ms: {verdict(p99 < GOAL_P99_MS and not ffail)}; "
            f"RSS during < {GOAL_RSS_MB:.0f} MB: {verdict(self.peak_rss < GOAL_RSS_MB)}; "
            f"RSS back within {GOAL_RSS_BACK_MB:.0f} MB: {verdict(back < GOAL_RSS_BACK_MB)}",
        ]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def scenario(label: str, server: ShoalProcess, count: int, addresses: list[str], requests: int) -> Result:
    assert server.proc is not None
    pid = server.proc.pid
    base = latencies(server, requests)
    time.sleep(2)
    idle = rss_mb(pid)
    idle_fds = open_fds(pid)
    sampler = RssSampler(pid)
    sampler.start()
    flood = Flood(server.port, count, {"idle": 3, "slow": 1}, addresses=addresses, max_seconds=90)
    with flood:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            counts = flood.counts()
            if not counts["planned_left"] and not counts.get("connecting") and not counts.get("handshake"):
                break
            time.sleep(0.2)
        during = latencies(server, requests)
        counts = flood.counts()
    # "After close": the server has closed its side of every flood socket, plus 3 s.
    deadline = time.monotonic() + 20
    while open_fds(pid) > idle_fds + 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3)
    after = rss_mb(pid)
    sampler.done.set()
    sampler.join()
    opened = sum(1 for conn in flood.conns if conn.established_at is not None)
    return Result(label, idle, sampler.peak, after, opened, counts.get("closed", 0),
                  counts.get("failed", 0) + counts["refused_connects"], base, during)


def run_server(base: Path, name: str, src: str, body: Callable[[ShoalProcess], list[Result]]) -> list[Result]:
    server = LimitedProcess(base / name, disable=QUIET, extra_args=("--verbose",))
    if src:
        server.src = src
    server.start(timeout=60)
    try:
        return body(server)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--sources", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--compare-src", default="", help="another source tree to run the spread flood on")
    args = parser.parse_args()
    raise_own_fd_limit()
    spread = sources(args.sources)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="shoal-flood-") as tmp:
        base = Path(tmp)

        def both(server: ShoalProcess) -> list[Result]:
            one = scenario(f"this tree, {args.connections} connections from {args.sources} addresses",
                           server, args.connections, spread, args.requests)
            two = scenario(f"this tree, {args.connections} connections from 127.0.0.1 (the client's address)",
                           server, args.connections, ["127.0.0.1"], args.requests)
            return [one, two]

        results += run_server(base, "this", "", both)
        trims = [line for line in (base / "this-server.log").read_text().splitlines() if "released the heap" in line]
        print("\n".join(trims))
        if args.compare_src:
            root = str(Path(args.compare_src).resolve().parent)
            results += run_server(base, "other", f"{args.compare_src}:{root}", lambda server: [scenario(
                f"{args.compare_src}, {args.connections} connections from {args.sources} addresses",
                server, args.connections, spread, args.requests)])
    for result in results:
        print("\n".join(result.lines()))


if __name__ == "__main__":
    main()
