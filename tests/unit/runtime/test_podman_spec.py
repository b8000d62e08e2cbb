"""The pure spec → libpod API body and inspect → status translations."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.agent.runtime import podman_spec
from shoal.agent.runtime.driver import (
    ContainerSpec,
    InvalidSpecError,
    Mount,
    PortMapping,
    Resources,
    SandboxSpec,
    Security,
    State,
)

ULIMITS = {"nofile": 20000, "nproc": 32768}


def create_body(spec: ContainerSpec, allow_privileged: bool = False, **extra: str) -> dict[str, Any]:
    return podman_spec.container_create_body(spec, pod_id="pod1", name="c1", labels={"a": "b"}, ulimits=ULIMITS,
                                             allow_privileged=allow_privileged, **extra)


def test_command_replaces_the_entrypoint_and_args_the_cmd() -> None:
    body = create_body(ContainerSpec(name="c", image="img:1", command=("sh", "-c"), args=("echo a b", "x")))
    assert (body["image"], body["entrypoint"], body["command"]) == ("img:1", ["sh", "-c"], ["echo a b", "x"])


def test_args_only_keep_the_image_entrypoint() -> None:
    body = create_body(ContainerSpec(name="c", image="img:1", args=("--port", "80")))
    assert "entrypoint" not in body
    assert body["command"] == ["--port", "80"]
    assert "command" not in create_body(ContainerSpec(name="c", image="img:1"))


def test_fixed_fields_ulimits_labels_env_workdir_mounts() -> None:
    spec = ContainerSpec(name="c", image="img", env={"A": "1 2", "B": "x=y"}, working_dir="/w",
                         mounts=(Mount("/h", "/c", read_only=True), Mount("/h2", "/c2")), stdin=True, tty=True)
    body = create_body(spec)
    assert (body["name"], body["pod"]) == ("c1", "pod1")
    assert body["log_configuration"] == {"driver": "k8s-file"}
    assert body["r_limits"] == [{"type": "nofile", "hard": 20000, "soft": 20000},
                                {"type": "nproc", "hard": 32768, "soft": 32768}]
    assert body["labels"] == {"a": "b"}
    assert body["env"] == {"A": "1 2", "B": "x=y"}
    assert body["work_dir"] == "/w"
    assert body["mounts"] == [
        {"destination": "/c", "source": "/h", "type": "bind", "options": ["rbind", "ro"]},
        {"destination": "/c2", "source": "/h2", "type": "bind", "options": ["rbind", "rw"]}]
    assert body["stdin"] is True and body["terminal"] is True
    assert "hostname" not in body and "utsns" not in body


def test_warm_pod_containers_get_hostname_and_hosts_file() -> None:
    body = create_body(ContainerSpec(name="c", image="img"), hostname="web-0", hosts_file="/state/hosts/p1")
    assert body["hostname"] == "web-0"
    assert body["utsns"] == {"nsmode": "private"}
    assert body["mounts"] == [{"destination": "/etc/hosts", "source": "/state/hosts/p1", "type": "bind",
                               "options": ["rbind", "ro"]}]
    own = create_body(ContainerSpec(name="c", image="img", mounts=(Mount("/mine", "/etc/hosts"),)),
                      hosts_file="/state/hosts/p1")
    assert [m["source"] for m in own["mounts"]] == ["/mine"]  # the pod's own /etc/hosts wins


def test_resources() -> None:
    spec = ContainerSpec(name="c", image="img", resources=Resources(
        cpu_limit_millis=1500, cpu_request_millis=250, memory_limit_bytes=64 << 20, memory_request_bytes=32 << 20))
    limits = create_body(spec)["resource_limits"]
    assert limits["memory"] == {"limit": 64 << 20, "swap": 64 << 20, "reservation": 32 << 20}
    assert limits["cpu"] == {"period": 100_000, "quota": 150_000, "shares": 256}
    tiny = create_body(ContainerSpec(name="c", image="img", resources=Resources(cpu_request_millis=1)))
    assert tiny["resource_limits"] == {"cpu": {"shares": 2}}
    assert "resource_limits" not in create_body(ContainerSpec(name="c", image="img"))


def test_security_context() -> None:
    spec = ContainerSpec(name="c", image="img", security=Security(
        run_as_user=1000, run_as_group=2000, read_only_root_filesystem=True,
        capabilities_add=("NET_ADMIN",), capabilities_drop=("ALL",)))
    body = create_body(spec)
    assert body["user"] == "1000:2000"
    assert body["read_only_filesystem"] is True
    assert (body["cap_add"], body["cap_drop"]) == (["NET_ADMIN"], ["ALL"])
    privileged = ContainerSpec(name="c", image="img", security=Security(privileged=True))
    with pytest.raises(InvalidSpecError):
        create_body(privileged)
    assert create_body(privileged, allow_privileged=True)["privileged"] is True


def test_invalid_env_is_rejected() -> None:
    with pytest.raises(InvalidSpecError):
        create_body(ContainerSpec(name="c", image="img", env={"A=B": "1"}))


def test_sandbox_body_and_names() -> None:
    spec = SandboxSpec(pod_uid="0123abcd-4567", namespace="ns", name="web", hostname="web-0",
                       ports=(PortMapping(80, host_port=8081, host_ip="127.0.0.1"), PortMapping(90)),
                       dns_servers=("10.43.0.10",), dns_searches=("ns.svc.cluster.local",))
    name = podman_spec.pod_name(spec)
    assert name == "shoal_ns_web_0123abcd"
    body = podman_spec.sandbox_create_body(spec, name=name, network="n1", infra_image="img",
                                           labels=podman_spec.sandbox_labels(spec, {"scope": "x"}))
    assert body["Networks"] == {"n1": {}}
    assert body["hostname"] == "web-0"
    assert body["portmappings"] == [{"container_port": 80, "host_port": 8081, "host_ip": "127.0.0.1",
                                     "protocol": "tcp"}]
    assert (body["dns_server"], body["dns_search"]) == (["10.43.0.10"], ["ns.svc.cluster.local"])
    assert body["infra_command"] == ["/bin/pause"]
    assert body["labels"]["shoal.pod.uid"] == "0123abcd-4567"
    assert body["labels"]["scope"] == "x"
    assert "shared_namespaces" not in body
    container = ContainerSpec(name="app", image="img", labels={"shoal.container.attempt": "2"})
    assert podman_spec.container_name(name, container) == "shoal_ns_web_0123abcd_app_2"


def test_warm_sandbox_body_shares_no_uts_namespace() -> None:
    body = podman_spec.sandbox_create_body(None, name="shoal_warm_1", network="n1", infra_image="img",
                                           labels={"shoal.warm": "true"})
    assert body["shared_namespaces"] == ["cgroup", "ipc", "net"]
    assert "hostname" not in body and "portmappings" not in body


@pytest.mark.parametrize(("image", "qualified"), [
    ("nginx", "docker.io/library/nginx"),
    ("nginx:1.27", "docker.io/library/nginx:1.27"),
    ("user/app:1", "docker.io/user/app:1"),
    ("quay.io/x/y:2", "quay.io/x/y:2"),
    ("localhost/shoal-demo:1", "localhost/shoal-demo:1"),
    ("localhost:5000/a:1", "localhost:5000/a:1"),
])
def test_normalize_image(image: str, qualified: str) -> None:
    assert podman_spec.normalize_image(image) == qualified


def inspect_entry(status: str, exit_code: int = 0, oom: bool = False, started: str = "2026-01-01T00:00:01.5Z",
                  finished: str = "2026-01-01T00:00:02.123456789Z") -> dict[str, object]:
    return {
        "Id": "abc", "Pod": "pod1", "Name": "c1", "Image": "f" * 64, "ImageName": "localhost/x:1",
        "Created": "2026-01-01T00:00:00.000000001Z",
        "State": {"Status": status, "ExitCode": exit_code, "OOMKilled": oom, "StartedAt": started,
                  "FinishedAt": finished},
        "Config": {"Labels": {"shoal.container.name": "app"}},
    }


def test_parse_container_states_and_reasons() -> None:
    running = podman_spec.parse_container(inspect_entry("running"))
    assert (running.state, running.exit_code, running.reason, running.finished_at) == (State.RUNNING, None, "", None)
    assert running.name == "app" and running.sandbox_id == "pod1" and running.image_id == "sha256:" + "f" * 64
    assert podman_spec.parse_container(inspect_entry("exited", 0)).reason == "Completed"
    assert podman_spec.parse_container(inspect_entry("exited", 2)).reason == "Error"
    assert podman_spec.parse_container(inspect_entry("exited", 137), oom_killed=True).reason == "OOMKilled"
    assert podman_spec.parse_container(inspect_entry("exited", 137, oom=True)).reason == "OOMKilled"
    assert podman_spec.parse_container(inspect_entry("created")).state is State.CREATED
    assert podman_spec.parse_container(inspect_entry("weird")).state is State.UNKNOWN
    zero = podman_spec.parse_container(inspect_entry("created", started="0001-01-01T00:00:00Z"))
    assert zero.started_at is None


def test_finish_before_start_is_clamped() -> None:
    status = podman_spec.parse_container(inspect_entry("exited", started="2026-01-01T00:00:03Z",
                                                       finished="2026-01-01T00:00:02Z"))
    assert status.finished_at == status.started_at
