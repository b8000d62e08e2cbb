"""Authorization: may this user do this verb on this resource (or path)?

Kubernetes' ``authorizer`` package, for the request pipeline (:mod:`shoal.api.pipeline`).

Contract and invariants
-----------------------
* :class:`Attributes` is Kubernetes' ``authorizer.Attributes``: the user
  (:class:`~shoal.security.user.UserInfo`) and the :class:`~shoal.api.requestinfo.RequestInfo`
  (verb, API group and version, resource, subresource, namespace, name; or, for a
  non-resource request, the path).
* An :class:`Authorizer` answers a :class:`Decision`: allow, deny or no opinion, with a reason
  for people.  Only *allow* lets the request through; deny and no opinion are both refused
  (Kubernetes refuses a request no authorizer allowed).  An authorizer that cannot decide
  raises; the request then fails with a 500, never with an allow.
* A refusal is a 403 Forbidden Status worded as Kubernetes words it (:func:`forbidden`)::

      configmaps "cm" is forbidden: User "alice" cannot get resource "configmaps" in API
      group "" in the namespace "default"[: <reason>]

  with ``details`` ``{name, group, kind: <resource>}``; cluster-scoped resources end in
  ``at the cluster scope``; non-resource requests read
  ``forbidden: User "alice" cannot get path "/metrics"``.
* :class:`AllowAuthenticated`, today's only implementation, allows every request of a user
  in ``system:authenticated``, and any request of anyone for the public paths (the
  equivalent of RBAC's ``system:public-info-viewer``, except that every method is let through
  so that the handler, not the policy, answers a wrong method with 405).  Everything else:
  no opinion.
"""

from __future__ import annotations

import enum
from collections.abc import Set
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from shoal.api.authn import PUBLIC_PATHS
from shoal.api.requestinfo import RequestInfo
from shoal.kube import errors
from shoal.security.user import ALL_AUTHENTICATED, UserInfo


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no-opinion"


@dataclass(frozen=True, slots=True)
class Decision:
    """An authorizer's answer and, for a refusal, why (appended to the 403 message)."""

    verdict: Verdict
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


ALLOWED = Decision(Verdict.ALLOW)
NO_OPINION = Decision(Verdict.NO_OPINION)


class Attributes(NamedTuple):
    """Kubernetes' ``authorizer.Attributes``: who asks, and for what (a named tuple, as it is
    built for every request)."""

    user: UserInfo
    request: RequestInfo

    @property
    def verb(self) -> str:
        return self.request.verb

    @property
    def resource_request(self) -> bool:
        return self.request.resource_request

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def api_group(self) -> str:
        return self.request.api_group

    @property
    def api_version(self) -> str:
        return self.request.api_version

    @property
    def resource(self) -> str:
        return self.request.resource

    @property
    def subresource(self) -> str:
        return self.request.subresource

    @property
    def namespace(self) -> str:
        return self.request.namespace

    @property
    def name(self) -> str:
        return self.request.name


class Authorizer(Protocol):
    """One authorization policy (Kubernetes' ``authorizer.Authorizer``)."""

    async def authorize(self, attributes: Attributes) -> Decision:
        """Allow, deny or no opinion; raises if the policy cannot be evaluated."""
        ...


class AllowAuthenticated:
    """Allows everything to authenticated users, and the public paths to anyone."""

    def __init__(self, public_paths: Set[str] = PUBLIC_PATHS) -> None:
        self.public_paths = public_paths

    async def authorize(self, attributes: Attributes) -> Decision:
        if ALL_AUTHENTICATED in attributes.user.groups:
            return ALLOWED
        if not attributes.request.resource_request and attributes.request.path in self.public_paths:
            return ALLOWED
        return NO_OPINION


def forbidden(attributes: Attributes, reason: str = "") -> errors.ApiError:
    """The 403 Status for a refused request (Kubernetes' ``responsewriters.Forbidden``)."""
    info = attributes.request
    user = attributes.user.name
    if not info.resource_request:
        text = f'User "{user}" cannot {info.verb} path "{info.path}"'
    else:
        resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        scope = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
        text = (f'User "{user}" cannot {info.verb} resource "{resource}" in API group '
                f'"{info.api_group}" {scope}')
    if reason:
        text = f"{text}: {reason}"
    qualified = f"{info.resource}.{info.api_group}" if info.api_group else info.resource
    if not qualified:
        message = f"forbidden: {text}"
    elif not info.name:
        message = f"{qualified} is forbidden: {text}"
    else:
        message = f'{qualified} "{info.name}" is forbidden: {text}'
    details = {key: value for key, value in (("name", info.name), ("group", info.api_group),
                                             ("kind", info.resource)) if value}
    return errors.ApiError(403, "Forbidden", message, details)
