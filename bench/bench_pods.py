"""Pod start latency: Shoal (create -> Ready) beside raw podman on the same image, same run.

Run: ``.venv/bin/python bench/bench_pods.py [--pods 20]``.

* Shoal: an all-in-one ``shoal server`` (API, scheduler, controllers, node agent on podman)
  on 127.0.0.1; each pod (the demo image, no probes, so Ready = containers running, the
  Kubernetes pod-startup SLI) is created through the API and timed until its Ready
  condition is True, observed through a watch.  Pods are started one at a time.
* Baselines, measured in the same run: ``podman run -d`` of the same image (what the issue
  compares against) and ``podman pod create`` + ``podman run -d --pod`` (the same work Shoal
  does: a pod with an infra container holding the network namespace, then the container).

Each series starts with one unmeasured warm-up (the first pod after start-up also pays the
node's one-time set-up: podman service start, demo image check, the first warm sandbox).
Prints every sample, p50/p99 of each and the ratios (goal: Shoal / podman run <= 1.3).
Bounded: N + 1 pods per series, each with a 60 s limit; everything created is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shoal.agent.runtime.demo_image import DEMO_IMAGE, ensure_demo_image_sync
from tests.support.server import ShoalProcess

PODMAN = ["podman", "--runtime", "runc"]
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


#: `podman pod create` takes no --ulimit: the infra container gets its limits from containers.conf.
_CONF = Path(tempfile.gettempdir()) / "shoal-bench-containers.conf"
_ENV = {**os.environ, "CONTAINERS_CONF": str(_CONF)}


def run(*args: str) -> str:
    _CONF.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n')
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=60,
                          env=_ENV).stdout.strip()


def podman_baselines(count: int, tag: str) -> tuple[list[float], list[float]]:
    plain: list[float] = []
    in_pod: list[float] = []
    try:
        for index in range(count + 1):  # index 0: warm-up
            began = time.perf_counter()
            run(*PODMAN, "run", "-d", *ULIMITS, "--name", f"{tag}-c{index}", "--label", f"bench={tag}", DEMO_IMAGE)
            plain.append(time.perf_counter() - began)
            began = time.perf_counter()
            run(*PODMAN, "pod", "create", "--name", f"{tag}-p{index}", "--label", f"bench={tag}",
                "--infra-image", DEMO_IMAGE, "--infra-command", "/bin/pause")
            run(*PODMAN, "run", "-d", *ULIMITS, "--pod", f"{tag}-p{index}", "--name", f"{tag}-pc{index}", DEMO_IMAGE)
            in_pod.append(time.perf_counter() - began)
    finally:
        for container in run(*PODMAN, "ps", "-aq", "--filter", f"label=bench={tag}").split():
            subprocess.run([*PODMAN, "rm", "-f", "-t", "0", container], capture_output=True, timeout=60)
        for pod in run(*PODMAN, "pod", "ps", "-q", "--filter", f"label=bench={tag}").split():
            subprocess.run([*PODMAN, "pod", "rm", "-f", "-t", "0", pod], capture_output=True, timeout=60)
    return plain[1:], in_pod[1:]


async def shoal_latency(server: ShoalProcess, count: int) -> list[float]:
    base = f"{server.url}/api/v1/namespaces/default/pods"
    tls = ssl.create_default_context(cafile=str(server.ca_file))
    headers = {"Authorization": f"Bearer {server.token}"}
    samples: list[float] = []
    async with httpx.AsyncClient(verify=tls, headers=headers, timeout=70) as client:
        for index in range(count + 1):  # index 0: warm-up
            name = f"bench-{index}"
            rv = (await client.get(base)).json()["metadata"]["resourceVersion"]
            body = {"metadata": {"name": name}, "spec": {"terminationGracePeriodSeconds": 1,
                                                         "containers": [{"name": "web", "image": DEMO_IMAGE}]}}
            began = time.perf_counter()
            response = await client.post(base, json=body)
            if response.status_code != 201:
                raise RuntimeError(response.text)
            params = {"watch": "true", "resourceVersion": rv, "fieldSelector": f"metadata.name={name}",
                      "timeoutSeconds": "60"}
            async with client.stream("GET", base, params=params) as stream:
                async for line in stream.aiter_lines():
                    pod = orjson.loads(line)["object"]
                    conditions = (pod.get("status") or {}).get("conditions") or []
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                        samples.append(time.perf_counter() - began)
                        break
                else:
                    raise RuntimeError(f"pod {name} did not become Ready within 60 s")
        for index in range(count + 1):
            await client.delete(f"{base}/bench-{index}")
    return samples[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=20)
    args = parser.parse_args()
    ensure_demo_image_sync()
    tag = f"shoalbench{uuid.uuid4().hex[:6]}"
    plain, in_pod = podman_baselines(args.pods, tag)
    node = f"bench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        server = ShoalProcess(Path(tmp) / "data", disable="", extra_args=(
            "--node-name", node, "--cluster-cidr", "10.95.0.0/16", "--kubelet-port", "0"))
        server.start()
        try:
            shoal = asyncio.run(shoal_latency(server, args.pods))
        finally:
            server.stop()
            for pod in run(*PODMAN, "pod", "ps", "-q", "--filter", f"label=shoal.node={node}").split():
                subprocess.run([*PODMAN, "pod", "rm", "-f", "-t", "0", pod], capture_output=True, timeout=60)
            subprocess.run(["podman", "network", "rm", "-f", f"shoal-{node}"], capture_output=True, timeout=60)
    for label, samples in (("shoal", shoal), ("podman run", plain), ("pod create + run", in_pod)):
        print(f"{label} samples (ms): {' '.join(f'{x * 1000:.0f}' for x in samples)}")
    print(f"pod start latency over {args.pods} pods (ms):")
    print("| what | p50 | p99 |")
    print("|---|---|---|")
    for label, samples in (("shoal: create -> Ready", shoal), ("podman run -d", plain),
                           ("podman pod create + run --pod", in_pod)):
        print(f"| {label} | {pct(samples, 0.5):.0f} | {pct(samples, 0.99):.0f} |")
    print(f"ratio shoal / podman run: p50 {pct(shoal, 0.5) / pct(plain, 0.5):.2f}, "
          f"p99 {pct(shoal, 0.99) / pct(plain, 0.99):.2f} (goal <= 1.3); "
          f"shoal / (pod create + run): p50 {pct(shoal, 0.5) / pct(in_pod, 0.5):.2f}")


if __name__ == "__main__":
    main()
