"""A bounded, steady HTTP load: ``python -m tests.support.load URL --rate R --seconds S``.

Sends one GET every ``1/rate`` seconds (each on a new connection, so every request is
balanced anew) for at most ``seconds`` and at most ``rate * seconds`` requests, with a 2 s
timeout each, and prints one JSON line: ``{"sent", "ok", "failed", "errors", "bodies"}``
(``bodies``: how often each distinct answer came).  A request fails on any error or a status
other than 200.  Run it inside a test's network namespace with ``nsenter --net=…`` to load a
ClusterIP; ``--until-file PATH`` ends the run early once PATH exists.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import time
import urllib.parse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--until-file", default="")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    interval, limit = 1.0 / args.rate, int(args.rate * args.seconds)
    sent = ok = 0
    errors: list[str] = []
    bodies: collections.Counter[str] = collections.Counter()
    start = time.monotonic()
    while sent < limit and time.monotonic() - start < args.seconds:
        if args.until_file and os.path.exists(args.until_file):
            break
        sent += 1
        try:
            conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=2.0)
            conn.request("GET", url.path or "/")
            response = conn.getresponse()
            body = response.read().decode(errors="replace").strip()
            conn.close()
            if response.status == 200:
                ok += 1
                bodies[body[:40]] += 1
            else:
                errors.append(f"{time.monotonic() - start:.2f}s: HTTP {response.status}")
        except OSError as exc:
            errors.append(f"{time.monotonic() - start:.2f}s: {type(exc).__name__}: {exc}")
        delay = start + sent * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(json.dumps({"sent": sent, "ok": ok, "failed": sent - ok, "errors": errors[:20], "bodies": dict(bodies)}))


if __name__ == "__main__":
    main()
