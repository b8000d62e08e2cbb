"""The real :class:`~shoal.api.app.ApiServer` in this process, over a real SQLite store.

``in_process(tmp_path, **options)`` writes a static token file (the admin, ``alice`` in
groups ``team-a,devs``, ``bob`` with no groups), opens a :class:`~shoal.store.sqlite.SqliteStore`
in ``tmp_path``, builds the ASGI app with ``options`` (``authorizer=``, ``audit=``,
``admission=``: a callable ``(storage, registry) -> plugin``), creates the ``default``
namespace as the API server does at start-up, and yields a :class:`Harness` whose
``client(user)`` is an httpx client speaking to the app through ``httpx.ASGITransport``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shoal.api.admission import AdmissionPlugin
from shoal.api.app import ApiServer
from shoal.api.authn import TokenAuthentication
from shoal.api.storage import ObjectStorage
from shoal.api.writes import WriteContext
from shoal.resources.kinds import build_registry
from shoal.resources.registry import Registry
from shoal.security.encryption import SecretBox
from shoal.security.tokens import TokenAuthenticator, ensure_admin_token
from shoal.security.user import APISERVER
from shoal.store.sqlite import SqliteStore

TOKENS = {"alice": "alice-token", "bob": "bob-token"}


@dataclass
class Harness:
    api: ApiServer
    storage: ObjectStorage
    tokens: dict[str, str]
    token_file: Path

    def client(self, user: str | None = "alice") -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.api), base_url="https://shoal.test",
                                 headers=headers)


@contextlib.asynccontextmanager
async def in_process(
    tmp_path: Path, *, admission: Callable[[ObjectStorage, Registry], AdmissionPlugin] | None = None,
    **options: Any,
) -> AsyncIterator[Harness]:
    admin = ensure_admin_token(tmp_path)
    token_file = tmp_path / "tokens"
    with token_file.open("a") as out:
        out.write(f'{TOKENS["alice"]},alice,uid-alice,"team-a,devs"\n{TOKENS["bob"]},bob,uid-bob\n')
    store = SqliteStore(tmp_path / "state.db")
    await store.start()
    try:
        registry = build_registry()
        storage = ObjectStorage(store, SecretBox.load_or_create(tmp_path))
        if admission is not None:
            options["admission"] = admission(storage, registry)
        authenticator = TokenAuthentication(TokenAuthenticator(token_file))
        api = ApiServer(storage, registry, authenticator, "127.0.0.1:6443", **options)
        namespaces = registry.lookup("", "v1", "namespaces")
        assert namespaces is not None
        await api.handlers.writer.create(namespaces, "", {"metadata": {"name": "default"}},
                                         WriteContext(user=APISERVER, field_manager="shoal-apiserver"))
        api.ready = True
        yield Harness(api, storage, {**TOKENS, "admin": admin}, token_file)
    finally:
        await store.close()
