"""Authentication: who sent this request?

The first stage of the request pipeline (:mod:`shoal.api.pipeline`).

Contract and invariants
-----------------------
* An :class:`Authenticator` reads an ASGI ``http`` or ``websocket`` scope and returns the full
  :class:`~shoal.security.user.UserInfo` (name, uid, groups, extra, and ``authenticated_by``),
  or None when the request carries no credential it accepts: the pipeline then answers 401
  Unauthorized (a refused WebSocket upgrade for WebSockets).  An authenticator that cannot
  decide (say, an unreadable token file) raises; it never lets a request through.
* Requests for :data:`PUBLIC_PATHS` are not authenticated at all: the pipeline gives them
  :data:`~shoal.security.user.ANONYMOUS` without reading any credential, so a bad token
  there is no 401.
* The user of a request is stored in the scope under :data:`SCOPE_USER`; handlers read it
  with :func:`request_user`, which raises :class:`UnauthenticatedRequestError` for a scope that
  did not pass through the pipeline (a wiring bug, answered with a 500).
* :class:`TokenAuthentication` (today's only implementation) checks ``Authorization: Bearer``
  against the static token file (:class:`~shoal.security.tokens.TokenAuthenticator`); the
  groups of the file are kept, ``system:authenticated`` is added and ``authenticated_by`` is
  ``"token"``.  A header that authenticated is remembered for ``memory`` seconds
  (:data:`AUTH_MEMORY`), so a revoked token may work that much longer (Kubernetes caches token
  reviews for minutes); a refused one is checked again on every request.  At most
  1024 headers are remembered; the memory is emptied when full.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from starlette.types import Scope

from shoal.api import requestinfo
from shoal.security.tokens import TokenAuthenticator
from shoal.security.user import UserInfo, authenticated

#: Paths anyone may read without credentials (health and version, as Kubernetes serves them).
PUBLIC_PATHS = frozenset({"/version", "/livez", "/readyz", "/healthz"})
#: Seconds an accepted bearer token is remembered without checking the token file again.
AUTH_MEMORY = 1.0
#: The scope key holding the request's :class:`~shoal.security.user.UserInfo`.
SCOPE_USER = "shoal.user"
_AUTH_MEMORY_SIZE = 1024


class UnauthenticatedRequestError(RuntimeError):
    """A handler was reached by a request that the pipeline did not authenticate."""


class Authenticator(Protocol):
    """One way of proving who sent a request (Kubernetes' ``authenticator.Request``)."""

    async def authenticate(self, scope: Scope) -> UserInfo | None:
        """The user, or None when the request has no accepted credential (401)."""
        ...


def request_user(scope: Scope) -> UserInfo:
    """The authenticated user of a request that went through the pipeline."""
    user = scope.get(SCOPE_USER)
    if not isinstance(user, UserInfo):
        raise UnauthenticatedRequestError(
            f"{scope.get('path', '?')}: the request did not pass through authentication")
    return user


class TokenAuthentication:
    """Bearer tokens from the static token file, with a short memory of accepted headers."""

    def __init__(self, tokens: TokenAuthenticator, memory: float = AUTH_MEMORY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tokens = tokens
        self.memory = memory
        self._clock = clock
        #: authorization header -> (clock expiry, user), for headers that authenticated
        self._known: dict[str, tuple[float, UserInfo]] = {}

    async def authenticate(self, scope: Scope) -> UserInfo | None:
        header = requestinfo.header(scope, b"authorization")
        now = self._clock()
        known = self._known.get(header) if header else None
        if known is not None and known[0] > now:
            return known[1]
        found = self.tokens.authenticate(header)
        if found is None or not header:
            return None
        user = authenticated(found, "token")
        if len(self._known) >= _AUTH_MEMORY_SIZE:
            self._known.clear()
        self._known[header] = (now + self.memory, user)
        return user
