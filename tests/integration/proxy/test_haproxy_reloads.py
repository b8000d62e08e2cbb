"""HAProxy reloaded back to back, as the service proxy does while Services are created in bulk.

The re-executed master listens on its CLI again a little after the new worker answers on
the runtime API; a reload sent in that gap used to fail with ``ConnectionRefusedError``,
which escaped the proxy's apply loop and stopped the whole agent.  ``reload`` validates the
file first (``haproxy -c``, tens of ms) and so mostly, not always, covers the gap; the test
reloads without it to hit the gap reliably.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shoal.proxy.haproxy import HAProxy
from shoal.proxy.haproxy_cfg import render


async def test_back_to_back_reloads_all_succeed(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is not installed (scripts/setup.sh installs it): the proxy tests need it")
    haproxy = HAProxy("haproxy", tmp_path / "run")
    text = render(haproxy.admin_socket, haproxy.alive_socket, ())
    await haproxy.start(text)
    try:
        await haproxy.reload(text)
        for _ in range(60):  # the validation (``haproxy -c``) skipped: the gap is hit about once in ten
            await haproxy._reload_checked()
        assert haproxy.reloads == 61
    finally:
        await haproxy.stop()
