"""Who is asking: Kubernetes' ``user.Info`` and the well-known users and groups.

Contract and invariants
-----------------------
* :class:`UserInfo` is immutable and hashable: ``name``, ``uid``, ``groups`` (in order, as
  the credential listed them), ``extra`` (a read-only mapping of key -> values, Kubernetes'
  ``map[string][]string``; it takes no part in the hash) and ``authenticated_by``, the way
  the user proved who they are (``"x509"``, ``"token"``, ``"anonymous"``, ``"loopback"``; empty for a
  user read from a credential file before any request).
* :func:`authenticated` adds ``system:authenticated`` as Kubernetes' AuthenticatedGroupAdder
  does: to every user but ``system:anonymous`` and users already in ``system:authenticated``
  or ``system:unauthenticated``; it is never added twice.
* :data:`ANONYMOUS` is the user of requests that carry no credentials where none are needed
  (``system:anonymous`` in ``system:unauthenticated``); :data:`APISERVER` is the API server
  itself writing its own objects (``system:apiserver`` in ``system:masters``), as Kubernetes'
  loopback client.

This module imports only the standard library (``security`` sits on the base package).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

ANONYMOUS_NAME = "system:anonymous"
APISERVER_NAME = "system:apiserver"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
SYSTEM_MASTERS = "system:masters"

_NO_EXTRA: Mapping[str, tuple[str, ...]] = types.MappingProxyType({})


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated user, as Kubernetes' ``user.Info`` (plus how they authenticated)."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _NO_EXTRA, hash=False)
    authenticated_by: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.extra, types.MappingProxyType):
            object.__setattr__(self, "extra", types.MappingProxyType(
                {key: tuple(values) for key, values in self.extra.items()}))

    def in_group(self, group: str) -> bool:
        return group in self.groups


def authenticated(user: UserInfo, authenticated_by: str) -> UserInfo:
    """``user`` as a request sees it: ``authenticated_by`` set, ``system:authenticated`` added."""
    groups = user.groups
    if (user.name != ANONYMOUS_NAME and ALL_AUTHENTICATED not in groups
            and ALL_UNAUTHENTICATED not in groups):
        groups = (*groups, ALL_AUTHENTICATED)
    return replace(user, groups=groups, authenticated_by=authenticated_by)


ANONYMOUS = UserInfo(ANONYMOUS_NAME, "", (ALL_UNAUTHENTICATED,), authenticated_by="anonymous")
APISERVER = UserInfo(APISERVER_NAME, "", (SYSTEM_MASTERS, ALL_AUTHENTICATED), authenticated_by="loopback")
