"""``authentication.k8s.io/v1`` SelfSubjectReview: the API's answer to "who am I?".

``kubectl auth whoami`` POSTs an empty SelfSubjectReview to
``/apis/authentication.k8s.io/v1/selfsubjectreviews`` (falling back to ``v1beta1`` on a 404)
and prints ``status.userInfo``.

Contract and invariants
-----------------------
* Only ``POST`` (create), on :data:`PATHS`; anything else is a 405 MethodNotAllowed Status.
  The request passed the pipeline (authenticated, authorized as ``create`` of
  ``selfsubjectreviews``); the body is not read (Kubernetes ignores its content too).
* The answer is 201 with the review as Kubernetes' SelfSubjectReview REST writes it:
  ``metadata.creationTimestamp`` now, ``status.userInfo`` with ``username``, ``uid`` and
  ``extra`` only when not empty, ``groups`` as authentication found them.  Nothing is stored.
* Not listed in discovery (the registry holds stored kinds only); kubectl does not look.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import Receive, Scope, Send

from shoal.api.authn import request_user
from shoal.api.bodies import json_response
from shoal.kube import errors
from shoal.kube.times import format_time

GROUP = "authentication.k8s.io"
PATHS = frozenset({f"/apis/{GROUP}/v1/selfsubjectreviews", f"/apis/{GROUP}/v1beta1/selfsubjectreviews"})


async def serve(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a request for one of :data:`PATHS` (an ``http`` scope that passed the pipeline)."""
    if scope.get("method") != "POST":
        response = json_response(errors.method_not_allowed(
            f"{scope.get('method')} is not supported on selfsubjectreviews: they can only be created").to_status(),
            405)
    else:
        response = json_response(review(scope), 201)
    await response(scope, receive, send)


def review(scope: Scope) -> dict[str, Any]:
    """The SelfSubjectReview of the request's user, in the request's API version."""
    user = request_user(scope)
    info: dict[str, Any] = {"username": user.name}
    if user.uid:
        info["uid"] = user.uid
    info["groups"] = list(user.groups)
    if user.extra:
        info["extra"] = {key: list(values) for key, values in user.extra.items()}
    version = str(scope["path"]).split("/")[3]
    return {"kind": "SelfSubjectReview", "apiVersion": f"{GROUP}/{version}",
            "metadata": {"creationTimestamp": format_time(time.time())}, "status": {"userInfo": info}}
