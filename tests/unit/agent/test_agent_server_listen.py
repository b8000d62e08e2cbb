"""The agent's HTTPS API fails to listen with a typed error, not uvicorn's ``sys.exit``.

A ``sys.exit`` inside the agent's server task would end ``shoal agent`` past the component
runner (no lease release, no clean stop); an :class:`AgentServerError` is an ordinary crash.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from shoal.agent.server import AgentServer, AgentServerError
from shoal.security.pki import ensure_pki


async def test_a_taken_port_is_an_agent_server_error(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", ["localhost"], ["127.0.0.1"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = AgentServer(object(), pod_lookup=object(), bind="127.0.0.1", port=port,  # type: ignore[arg-type]
                             ca_pem=pki.ca_pem, cert_dir=tmp_path / "agent")
        with pytest.raises(AgentServerError, match=f"127.0.0.1:{port}"):
            await server.start()
