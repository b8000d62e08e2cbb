"""API server benchmark: cold start, idle memory, and request latency on SQLite and etcd.

Run: ``.venv/bin/python bench/bench_apiserver.py [--objects 1000] [--starts 5]``.

Prints, for a real ``shoal server`` process on 127.0.0.1:

* cold start to ``/readyz`` (first start, which also makes the CA and keys, and restarts),
  beside the bare ``python -c pass`` start-up of the same interpreter as a baseline;
* idle RSS after start-up and after loading the objects (goal: < 100 MB);
* create / get / list latency p50 and p99 over N ConfigMaps through HTTPS (one keep-alive
  connection), beside the same operations on the raw store in this process (the API's
  overhead is the ratio).  Lists read all N objects (``limit=500`` pages, as kubectl does).

Every loop is bounded by the object count; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shoal.store import open_store
from tests.support.etcd import start_etcd
from tests.support.server import ShoalProcess


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await call()
    return time.perf_counter() - began


def configmap(index: int) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"bench-{index:05d}", "labels": {"bench": "yes"}},
            "data": {"index": str(index), "payload": "x" * 200}}


async def api_latency(server: ShoalProcess, count: int) -> dict[str, list[float]]:
    base = f"{server.url}/api/v1/namespaces/default/configmaps"
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    samples: dict[str, list[float]] = {"create": [], "get": [], "list": []}
    tls = ssl.create_default_context(cafile=str(server.ca_file))
    async with httpx.AsyncClient(verify=tls, headers=headers, timeout=30) as client:
        for index in range(count):
            body = orjson.dumps(configmap(index))
            samples["create"].append(await timed(functools.partial(_post, client, base, body)))
        for index in range(count):
            url = f"{base}/bench-{index:05d}"
            samples["get"].append(await timed(functools.partial(_get, client, url)))
        for _ in range(20):
            async def full_list() -> None:
                token = ""
                while True:
                    params: dict[str, str | int] = {"limit": 500, **({"continue": token} if token else {})}
                    response = await _checked(client.get(base, params=params), 200)
                    token = response.json()["metadata"].get("continue", "")
                    if not token:
                        return
            samples["list"].append(await timed(full_list))
    return samples


async def _checked(request: Awaitable[httpx.Response], code: int) -> httpx.Response:
    response = await request
    if response.status_code != code:
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    return response


async def _post(client: httpx.AsyncClient, url: str, body: bytes) -> None:
    await _checked(client.post(url, content=body), 201)


async def _get(client: httpx.AsyncClient, url: str) -> None:
    await _checked(client.get(url), 200)


async def store_latency(datastore: str, data_dir: Path, count: int) -> dict[str, list[float]]:
    store = open_store(datastore, data_dir)
    await store.start()
    samples: dict[str, list[float]] = {"create": [], "get": [], "list": []}
    prefix = "/registry/configmaps/bench/"
    try:
        for index in range(count):
            value = orjson.dumps(configmap(index))
            samples["create"].append(await timed(functools.partial(store.create, f"{prefix}bench-{index:05d}", value)))
        for index in range(count):
            samples["get"].append(await timed(functools.partial(store.get, f"{prefix}bench-{index:05d}")))
        for _ in range(20):
            async def full_list() -> None:
                start = None
                while True:
                    page = await store.list(prefix, limit=500, start_after=start)
                    if not page.more:
                        return
                    start = page.items[-1].key
            samples["list"].append(await timed(full_list))
    finally:
        await store.close()
    return samples


def report(label: str, api: dict[str, list[float]], raw: dict[str, list[float]]) -> list[str]:
    rows = []
    for op in ("create", "get", "list"):
        a50, a99, r50, r99 = pct(api[op], 0.5), pct(api[op], 0.99), pct(raw[op], 0.5), pct(raw[op], 0.99)
        rows.append(f"| {label} | {op} | {a50:.2f} | {a99:.2f} | {r50:.2f} | {r99:.2f} | {a50 / r50:.1f}x |")
    return rows


def cold_starts(base: Path, starts: int) -> tuple[list[float], float, float]:
    times = []
    server = ShoalProcess(base / "start-data", disable="controllers,agent,scheduler")
    idle_rss = 0.0
    for attempt in range(starts):
        times.append(server.start())
        if attempt == 0:
            time.sleep(2)
            assert server.proc is not None
            idle_rss = rss_mb(server.proc.pid)
        server.stop()
    baseline = []
    for _ in range(starts):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - began)
    return times, statistics.median(baseline), idle_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        base = Path(tmp)
        times, python_start, idle_rss = cold_starts(base, args.starts)
        print(f"cold start to /readyz: first (makes CA, keys) {times[0] * 1000:.0f} ms, "
              f"restarts median {statistics.median(times[1:]) * 1000:.0f} ms "
              f"(goal < 1000 ms); bare `python -c pass` {python_start * 1000:.0f} ms "
              f"-> ratio {statistics.median(times) / python_start:.1f}x")
        print(f"idle RSS after start: {idle_rss:.1f} MB (goal < 100 MB)")
        table = ["| store | op | API p50 ms | API p99 ms | raw store p50 ms | raw store p99 ms | API/raw p50 |",
                 "|---|---|---|---|---|---|---|"]
        for backend in ("sqlite", "etcd"):
            if backend == "sqlite":
                server = ShoalProcess(base / "sqlite-data", disable="controllers,agent,scheduler")
                server.start()
                try:
                    api = asyncio.run(api_latency(server, args.objects))
                    assert server.proc is not None
                    loaded_rss = rss_mb(server.proc.pid)
                finally:
                    server.stop()
                raw = asyncio.run(store_latency("sqlite", base / "raw-sqlite", args.objects))
            else:
                with start_etcd(base / "etcd-api") as etcd:
                    server = ShoalProcess(base / "etcd-data", datastore=etcd.url,
                                          disable="controllers,agent,scheduler")
                    server.start()
                    try:
                        api = asyncio.run(api_latency(server, args.objects))
                    finally:
                        server.stop()
                with start_etcd(base / "etcd-raw") as etcd:
                    raw = asyncio.run(store_latency(etcd.url, base / "unused", args.objects))
            table += report(backend, api, raw)
            if backend == "sqlite":
                print(f"RSS with {args.objects} objects loaded (sqlite): {loaded_rss:.1f} MB")
        print(f"\nlatency over {args.objects} ConfigMaps (list = all {args.objects}, 20 runs):")
        print("\n".join(table))


if __name__ == "__main__":
    main()
