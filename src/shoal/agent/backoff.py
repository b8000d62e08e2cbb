"""Kubelet's per-key back-off, on the agent's injected clock.

* The agent's clock is a :class:`shoal.kube.clock.Clock` on the wall-clock scale: the agent
  compares it with timestamps the runtime reports (a container's ``finished_at``), so the real
  clock is :class:`~shoal.kube.clock.WallClock`; a :class:`~shoal.kube.clock.FakeClock` started
  at an epoch value is a valid test clock (virtual time moves only on ``advance``).
* :class:`Backoff` is kubelet's ``flowcontrol.Backoff`` as used for CrashLoopBackOff and image
  pulls: each key has a delay that starts at ``initial``, doubles on every :meth:`Backoff.next`
  up to ``maximum``, and is forgotten once ``2 * maximum`` has passed since its last update
  (a container that ran ten minutes without crashing starts again at ``initial``).

  Worked example (initial 10 s, maximum 300 s), a container that crashes at once each time:
  crash 1 at t=0: no entry, so not in backoff -> ``next`` sets 10 s, restart now;
  crash 2 at t=1: in backoff until t=11 -> "back-off 10s", restart at t=11, ``next`` -> 20 s;
  crash 3 at t=12: in backoff until t=32 -> "back-off 20s"; ... then 40, 80, 160, 300, 300 s.
* Delays print with :func:`shoal.kube.times.go_duration` ("back-off 5m0s restarting ..."),
  as kubelet prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shoal.kube.clock import Clock

__all__ = ["Backoff", "to_epoch"]



def to_epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


@dataclass(slots=True)
class _Entry:
    delay: float
    last_update: float


class Backoff:
    """Per-key exponential backoff with expiry (kubelet ``flowcontrol.Backoff``)."""

    def __init__(self, initial: float, maximum: float, clock: Clock) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, at: float) -> bool:
        return at - entry.last_update > 2 * self.maximum

    def get(self, key: str) -> float:
        """The current delay of ``key`` (0 when it has none)."""
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def next(self, key: str, event_time: float | None = None) -> float:
        """Count one more failure of ``key`` at ``event_time`` (default now); returns the delay."""
        at = self.clock.now() if event_time is None else event_time
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, at):
            entry = self._entries[key] = _Entry(self.initial, at)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = at
        return entry.delay

    def remaining(self, key: str, event_time: float) -> float:
        """Seconds left until ``event_time + delay(key)``; 0 when ``key`` is not backing off.

        ``remaining(...) > 0`` is kubelet's ``IsInBackOffSince(key, event_time)``."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            return 0.0
        return max(0.0, event_time + entry.delay - self.clock.now())

    def remaining_since_update(self, key: str) -> float:
        """Seconds left of the delay counted from the last :meth:`next` (kubelet's
        ``IsInBackOffSinceUpdate``, used for image pulls); 0 when ``key`` is not backing off."""
        entry = self._entries.get(key)
        now = self.clock.now()
        if entry is None or self._expired(entry, now):
            return 0.0
        return max(0.0, entry.last_update + entry.delay - now)

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def reset_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self) -> None:
        """Forget every expired key."""
        now = self.clock.now()
        for key in [k for k, e in self._entries.items() if self._expired(e, now)]:
            del self._entries[key]
