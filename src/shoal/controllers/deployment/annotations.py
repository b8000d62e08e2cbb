"""The annotations a Deployment keeps on itself and its ReplicaSets (pure, on plain dicts).

* ``deployment.kubernetes.io/revision`` - on every RS the number of its rollout; on the
  Deployment the revision of its new RS.  A new RS gets ``max(old revisions) + 1``; an old RS
  that becomes new again (``kubectl rollout undo``) is bumped the same way, and its previous
  numbers are kept, comma-separated, in ``deployment.kubernetes.io/revision-history`` (at
  most ~2000 characters; the oldest entries are dropped first).
* ``deployment.kubernetes.io/desired-replicas`` / ``max-replicas`` - the Deployment's
  ``replicas`` and ``replicas + maxSurge`` the RS was last scaled for; they detect scaling
  events and drive proportional scaling.
* Every other Deployment annotation is copied onto its new RS, except the kubectl
  ``last-applied-configuration`` and the ones above (``annotationsToSkip``); RS annotations
  the Deployment does not have are left alone.

Each setter returns whether it changed anything, so callers write only on change.
"""

from __future__ import annotations

from shoal.controllers.deployment.replicas import DESIRED_REPLICAS, MAX_REPLICAS, REVISION, max_surge, replicas
from shoal.kube.objects import Obj

__all__ = [
    "LAST_APPLIED",
    "MAX_HISTORY_CHARS",
    "REVISION_HISTORY",
    "copy_deployment_annotations",
    "replicas_annotations_need_update",
    "set_deployment_revision",
    "set_new_rs_annotations",
    "set_replicas_annotations",
]

REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
MAX_HISTORY_CHARS = 2000
_SKIP = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO})


def _annotations(obj: Obj) -> dict[str, str]:
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        return annotations
    fresh: dict[str, str] = {}
    meta["annotations"] = fresh
    return fresh


def copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    changed = False
    target = _annotations(rs)
    for key, value in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if key in _SKIP or target.get(key) == value:
            continue
        target[key] = value
        changed = True
    return changed


def _append_history(annotations: dict[str, str], old_revision: str, limit: int) -> None:
    history = [r for r in annotations.get(REVISION_HISTORY, "").split(",") if r]
    history.append(old_revision)
    while len(",".join(history)) > limit and len(history) > 1:
        history.pop(0)
    annotations[REVISION_HISTORY] = ",".join(history)


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool,
                           history_limit: int = MAX_HISTORY_CHARS) -> bool:
    """``SetNewReplicaSetAnnotations``: copy, bump the revision, annotate a created RS's sizes."""
    changed = copy_deployment_annotations(d, rs)
    annotations = _annotations(rs)
    old = annotations.get(REVISION, "")
    try:
        old_number = int(old) if old else 0
    except ValueError:
        return changed  # a revision we cannot read is left as it is
    if old_number < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if old:
            _append_history(annotations, old, history_limit)
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, most: int) -> bool:
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DESIRED_REPLICAS) != str(desired) or annotations.get(MAX_REPLICAS) != str(most)


def set_replicas_annotations(rs: Obj, desired: int, most: int) -> bool:
    if not replicas_annotations_need_update(rs, desired, most):
        return False
    annotations = _annotations(rs)
    annotations[DESIRED_REPLICAS] = str(desired)
    annotations[MAX_REPLICAS] = str(most)
    return True


def set_deployment_revision(d: Obj, revision: str) -> bool:
    annotations = _annotations(d)
    if annotations.get(REVISION) == revision:
        return False
    annotations[REVISION] = revision
    return True
