"""Shoal's pod scheduler: Kubernetes' default scheduler, simplified.

``Scheduler(client).run(stop)`` assigns pending pods to nodes.  Modules: :mod:`.framework`
(plugin Protocols, Status), :mod:`.plugins` (one module per plugin), :mod:`.algorithm`
(filter + score, FailedScheduling messages), :mod:`.cache` (nodes and the pods on them),
:mod:`.queue` (active / backoff / in flight), :mod:`.binding` (API writes),
:mod:`.scheduler` (the loop).
"""

from shoal.scheduler.algorithm import Algorithm, FitError, fit_error_message
from shoal.scheduler.cache import SchedulerCache
from shoal.scheduler.framework import Code, FilterPlugin, ScorePlugin, Status
from shoal.scheduler.nodeinfo import NodeInfo
from shoal.scheduler.podinfo import PodInfo
from shoal.scheduler.queue import SchedulingQueue
from shoal.scheduler.scheduler import DEFAULT_SCHEDULER_NAME, Scheduler

__all__ = [
    "DEFAULT_SCHEDULER_NAME",
    "Algorithm",
    "Code",
    "FilterPlugin",
    "FitError",
    "NodeInfo",
    "PodInfo",
    "Scheduler",
    "SchedulerCache",
    "SchedulingQueue",
    "ScorePlugin",
    "Status",
    "fit_error_message",
]
