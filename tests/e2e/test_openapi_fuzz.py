"""A bounded schemathesis run over the server's own OpenAPI documents: no request gets a 5xx.

One real ``shoal server --disable agent`` (SQLite).  The test reads ``/openapi/v3`` and every
group-version document it lists, as kubectl does, merges them into one document (their
``components.schemas`` must agree name by name) and runs the schemathesis CLI over every
operation (core v1, apps/v1, coordination, discovery: every path, every method, collection
DELETE and the subresources) with the admin token over HTTPS, verified against the cluster CA.

The run is fixed and bounded: seed :data:`SEED`, ``PYTHONHASHSEED=0``, one worker, no example
database, so the sequence of requests is the same on every run (only how far it gets depends on
the machine's speed).  Positive and negative cases; first the coverage phase (boundary and
wrong-type values, operation by operation, until schemathesis keeps the rest of the budget for
fuzzing), then the fuzzing phase over every operation, :data:`MAX_EXAMPLES` cases each per
cycle, cycling until the budget of :data:`MAX_TIME` seconds is spent.  The only check is
``not_a_server_error``: any 5xx, or a request that gets no answer in :data:`REQUEST_TIMEOUT`
seconds, fails the test, whose message lists each 5xx request and shows schemathesis' report
with a curl line per failure.  :mod:`tests.e2e.fuzz_hooks` steers every other case with path
parameters at objects that exist and bounds watches.

Schemathesis is a test dependency (``pyproject.toml``, ``.[dev]``); without it the test fails.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import fuzz_hooks
from tests.support.server import ShoalProcess

SEED = 20260408
MAX_EXAMPLES = 8
MAX_TIME = 110
REQUEST_TIMEOUT = 10
#: The group-versions whose every path must be fuzzed.
REQUIRED = ("api/v1", "apis/apps/v1")

REPO = Path(__file__).resolve().parents[2]
#: Values the documents give in prose only (Kubernetes' own documents do the same).  The fuzzed
#: copy lists them as enums, so that positive cases get past the first check of a request and
#: negative cases still send everything else.
ENUMS = {
    "dryRun": ["All"],
    "fieldValidation": ["Ignore", "Warn", "Strict"],
    "propagationPolicy": ["Orphan", "Background", "Foreground"],
    "resourceVersionMatch": ["Exact", "NotOlderThan"],
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    with ShoalProcess(tmp_path_factory.mktemp("shoal-fuzz") / "data") as proc:
        yield proc


def merged_document(server: ShoalProcess) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The served group-version documents as one; also each group-version's paths."""
    headers = {"Authorization": f"Bearer {server.token}"}
    merged: dict[str, Any] = {"paths": {}, "components": {"schemas": {}}}
    paths_by_gv: dict[str, list[str]] = {}
    verify = ssl.create_default_context(cafile=server.ca_file)
    with httpx.Client(base_url=server.url, verify=verify, headers=headers) as client:
        index = client.get("/openapi/v3").raise_for_status().json()
        for gv, entry in sorted(index["paths"].items()):
            doc = client.get(entry["serverRelativeURL"]).raise_for_status().json()
            assert doc["openapi"].startswith("3."), gv
            merged.setdefault("openapi", doc["openapi"])
            merged.setdefault("info", doc["info"])
            paths_by_gv[gv] = sorted(doc["paths"])
            for path, item in doc["paths"].items():
                assert path not in merged["paths"], f"{path} is in two documents"
                merged["paths"][path] = item
            schemas = merged["components"]["schemas"]
            for name, schema in doc["components"]["schemas"].items():
                assert schemas.setdefault(name, schema) == schema, f"{gv} redefines {name}"
    return merged, paths_by_gv


def with_enums(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the query parameters of :data:`ENUMS` given as enums (in place)."""
    for item in document["paths"].values():
        parameters = list(item.get("parameters", []))
        for method in HTTP_METHODS:
            parameters += item.get(method, {}).get("parameters", [])
        for parameter in parameters:
            if parameter["in"] == "query" and parameter["name"] in ENUMS:
                parameter["schema"] = {**parameter["schema"], "enum": ENUMS[parameter["name"]]}
    return document


def run_report(path: Path) -> tuple[Counter[int], set[tuple[str, str]], list[str]]:
    """Status codes of every request, the operations run, and each 5xx request, from the NDJSON report."""
    codes: Counter[int] = Counter()
    operations: set[tuple[str, str]] = set()
    errors: list[str] = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if finished is None:
            continue
        recorder = finished["recorder"]
        interactions = recorder.get("interactions") or {}
        if interactions and " " in recorder["label"]:
            method, operation = recorder["label"].split(" ", 1)
            operations.add((method.upper(), operation))
        for interaction in interactions.values():
            request, response = interaction["request"], interaction.get("response")
            status = response["status_code"] if response else 0
            codes[status] += 1
            if status >= 500:
                errors.append(f"{status} {request['method']} {request['uri']}")
    return codes, operations, errors


def test_schemathesis_finds_no_server_error(server: ShoalProcess, tmp_path: Path) -> None:
    """Issue 8, the schemathesis run: every operation of every served document, fuzzed, gets no 5xx."""
    if importlib.util.find_spec("schemathesis") is None:
        pytest.fail("schemathesis is required (pip install -e '.[dev]'); not skipping")
    document, paths_by_gv = merged_document(server)
    for gv in REQUIRED:
        assert paths_by_gv.get(gv), f"{gv} is not in /openapi/v3"
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(with_enums(copy.deepcopy(document))))
    env = {**os.environ, "SHOAL_FUZZ_URL": server.url, "SHOAL_FUZZ_TOKEN": server.token,
           "SHOAL_FUZZ_CA": str(server.ca_file), "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks",
           "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    for variable in ("SCHEMATHESIS_TELEMETRY", "SCHEMATHESIS_REPORT_TELEMETRY"):
        env[variable] = "false"
    os.environ.update({k: env[k] for k in ("SHOAL_FUZZ_URL", "SHOAL_FUZZ_TOKEN", "SHOAL_FUZZ_CA")})
    fuzz_hooks.ensure_fixtures()
    report = tmp_path / "report.ndjson"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", str(spec), "--url", server.url,
        "--header", f"Authorization: Bearer {server.token}", "--tls-verify", str(server.ca_file),
        "--checks", "not_a_server_error", "--phases", "examples,coverage,fuzzing", "--mode", "all",
        "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_TIME),
        "--workers", "1", "--generation-database", "none", "--request-timeout", str(REQUEST_TIMEOUT),
        "--suppress-health-check", "all", "--warnings", "off", "--no-color",
        "--report", "ndjson", "--report-ndjson-path", str(report), "--report-dir", str(tmp_path),
    ]
    began = time.monotonic()
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=MAX_TIME + 120)
    elapsed = time.monotonic() - began
    output = result.stdout + result.stderr
    codes, operations, errors = run_report(report)
    summary = (f"schemathesis: {sum(codes.values())} requests to {len(operations)} operations in {elapsed:.0f}s, "
               f"status codes {dict(sorted(codes.items()))}")
    print(summary)
    assert result.returncode == 0 and not errors, (
        f"{summary}\n5xx: {errors[:20]}\n--- schemathesis ---\n{output[-20000:]}\n--- server ---\n{server.log()}")
    for gv in REQUIRED:
        for path in paths_by_gv[gv]:
            methods = {m.upper() for m in document["paths"][path] if m in HTTP_METHODS}
            missing = {m for m in methods if (m, path) not in operations}
            assert not missing, f"{path}: {sorted(missing)} never fuzzed\n{summary}"
