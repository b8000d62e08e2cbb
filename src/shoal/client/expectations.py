"""Expectations: what a controller is still waiting to see in its cache (client-go style).

A controller that creates or deletes N pods records that it *expects* to observe N creations
(or the deletion of these particular pods) through its informer.  Until it has, its cache is
known to be stale for that key, and :meth:`Expectations.satisfied` is False: the controller
then only recomputes status and must not create or delete again, or a slow watch would make
it double-create.  The informer handlers lower the counts (:meth:`creation_observed`,
:meth:`deletion_observed`); a create that failed is lowered by the controller itself.

Invariants (Kubernetes ``ControllerExpectations`` + ``UIDTrackingControllerExpectations``):

* a key with no record is satisfied (nothing outstanding);
* deletions are tracked by pod key, so observing the same pod's deletion twice (a
  ``deletionTimestamp`` update, then the DELETE event) counts once;
* a record older than ``ttl`` (5 minutes) is satisfied regardless: a lost watch event can
  delay a controller but never wedge it.  Time comes from the injected clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shoal.kube.clock import Clock

__all__ = ["EXPECTATIONS_TTL", "Expectations"]

EXPECTATIONS_TTL = 300.0


@dataclass
class _Record:
    adds: int
    deletes: set[str] = field(default_factory=set)
    stamp: float = 0.0


class Expectations:
    def __init__(self, clock: Clock, ttl: float = EXPECTATIONS_TTL) -> None:
        self._clock = clock
        self.ttl = ttl
        self._records: dict[str, _Record] = {}

    def satisfied(self, key: str) -> bool:
        record = self._records.get(key)
        if record is None:
            return True
        if record.adds <= 0 and not record.deletes:
            return True
        return self._clock.now() - record.stamp > self.ttl

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected for ``key``."""
        record = self._records.get(key)
        return (0, 0) if record is None else (max(record.adds, 0), len(record.deletes))

    def expect_creations(self, key: str, count: int) -> None:
        self._records[key] = _Record(count, set(), self._clock.now())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._records[key] = _Record(0, set(pod_keys), self._clock.now())

    def creation_observed(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.deletes.discard(pod_key)

    def forget(self, key: str) -> None:
        self._records.pop(key, None)
