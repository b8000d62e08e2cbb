"""The runtime view of a pod: attempts newest first, labels, and the spec -> driver mapping."""

from __future__ import annotations

from datetime import UTC, datetime

from shoal.agent import containers as ct
from shoal.agent.runtime.driver import ContainerStatus, SandboxStatus, State


def _c(cid: str, name: str, attempt: int, state: State = State.EXITED) -> ContainerStatus:
    return ContainerStatus(id=cid, sandbox_id="sb", name=name, state=state, image="img",
                           labels={ct.LABEL_CONTAINER: name, ct.LABEL_ATTEMPT: str(attempt)},
                           created_at=datetime(2024, 1, 1, 0, 0, attempt, tzinfo=UTC))


def test_attempts_newest_first_and_sandbox_choice() -> None:
    pod = ct.RuntimePod("u", containers=[_c("a0", "app", 0), _c("a2", "app", 2, State.RUNNING), _c("a1", "app", 1),
                                         _c("s0", "side", 0)])
    assert [c.id for c in pod.attempts("app")] == ["a2", "a1", "a0"]
    assert [ct.attempt_of(c) for c in pod.attempts("app")] == [2, 1, 0]
    assert pod.attempts("none") == [] and not pod.empty and pod.sandbox() is None
    old = SandboxStatus("old", "u", "10.0.0.2", True, created_at=datetime(2024, 1, 1, tzinfo=UTC))
    new = SandboxStatus("new", "u", "10.0.0.3", True, created_at=datetime(2024, 1, 2, tzinfo=UTC))
    dead = SandboxStatus("dead", "u", "", False, created_at=datetime(2024, 1, 3, tzinfo=UTC))
    assert ct.RuntimePod("u", [old, dead, new]).sandbox() == new


def test_attempt_label_garbage_counts_as_zero() -> None:
    broken = _c("x", "app", 0)
    broken.labels[ct.LABEL_ATTEMPT] = "many"
    assert ct.attempt_of(broken) == 0


def test_container_hash_is_stable_and_sensitive() -> None:
    spec = {"name": "app", "image": "img:1", "env": [{"name": "A", "value": "1"}]}
    assert ct.container_hash(spec) == ct.container_hash(dict(reversed(list(spec.items()))))
    assert ct.container_hash(spec) != ct.container_hash({**spec, "image": "img:2"})


def test_resources_and_security_mapping() -> None:
    resources = ct.resources_of({"resources": {"limits": {"cpu": "1500m", "memory": "64Mi"},
                                             "requests": {"cpu": "0.25", "memory": "1Gi"}}})
    assert (resources.cpu_limit_millis, resources.cpu_request_millis) == (1500, 250)
    assert (resources.memory_limit_bytes, resources.memory_request_bytes) == (64 << 20, 1 << 30)
    security = ct.security_of({"spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000}}},
                            {"securityContext": {"runAsUser": 2000, "capabilities": {"drop": ["ALL"]}}})
    assert (security.run_as_user, security.run_as_group, security.capabilities_drop) == (2000, 3000, ("ALL",))
