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
* :class:`X509Authentication` reads the client certificate that the TLS layer verified
  against the cluster CA (with the clientAuth purpose) and put, as ``ssl.getpeercert()``
  returns it, into ``scope["state"][PEERCERT_STATE_KEY]`` (None or absent: no certificate).
  As Kubernetes' x509 authenticator: the user is the subject's CommonName (the last one, as Go
  reads a subject), the groups its Organizations in order, no uid; a certificate without a
  CommonName, or outside its validity period at the time of the request (a long-lived
  connection), authenticates nobody.  ``authenticated_by`` is ``"x509"``.
* :class:`UnionAuthentication` asks its authenticators in order and takes the first user; the
  server puts x509 before tokens, as kube-apiserver does, so a request with both a client
  certificate and a bearer token is the certificate's user.
* :class:`TokenAuthentication` checks ``Authorization: Bearer``
  against the static token file (:class:`~shoal.security.tokens.TokenAuthenticator`); the
  groups of the file are kept, ``system:authenticated`` is added and ``authenticated_by`` is
  ``"token"``.  A header that authenticated is remembered for ``memory`` seconds
  (:data:`AUTH_MEMORY`), so a revoked token may work that much longer (Kubernetes caches token
  reviews for minutes); a refused one is checked again on every request.  At most
  1024 headers are remembered; the memory is emptied when full.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

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
#: The key in ``scope["state"]`` where the TLS layer puts the verified client certificate.
PEERCERT_STATE_KEY = "shoal.peercert"
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


def peercert_user(peercert: Mapping[str, Any], now: float) -> UserInfo | None:
    """The user named by a verified certificate (``getpeercert()`` form), or None.

    ``now`` is seconds since the epoch; a certificate outside its validity period names nobody.
    """
    try:
        not_before = ssl.cert_time_to_seconds(str(peercert["notBefore"]))
        not_after = ssl.cert_time_to_seconds(str(peercert["notAfter"]))
    except (KeyError, ValueError):
        return None
    if not not_before <= now <= not_after:
        return None
    common_name = ""
    organizations: list[str] = []
    for rdn in peercert.get("subject", ()):
        for attribute, value in rdn:
            if attribute == "commonName":
                common_name = str(value)
            elif attribute == "organizationName":
                organizations.append(str(value))
    if not common_name:
        return None
    return authenticated(UserInfo(common_name, "", tuple(organizations)), "x509")


class X509Authentication:
    """The client certificate the TLS layer verified (CN = user, O = groups)."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._wall_clock = wall_clock

    async def authenticate(self, scope: Scope) -> UserInfo | None:
        state = scope.get("state")
        peercert = state.get(PEERCERT_STATE_KEY) if isinstance(state, Mapping) else None
        if not peercert:
            return None
        return peercert_user(peercert, self._wall_clock())


class UnionAuthentication:
    """The first user any of ``authenticators`` finds, asked in order (Kubernetes' union)."""

    def __init__(self, *authenticators: Authenticator) -> None:
        self.authenticators = authenticators

    async def authenticate(self, scope: Scope) -> UserInfo | None:
        for authenticator in self.authenticators:
            user = await authenticator.authenticate(scope)
            if user is not None:
                return user
        return None
