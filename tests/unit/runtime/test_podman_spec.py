"""The pure spec → podman argv and inspect → status translations."""

from __future__ import annotations

import json

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


def create_args(spec: ContainerSpec, allow_privileged: bool = False) -> list[str]:
    return podman_spec.container_create_args(spec, pod_id="pod1", name="c1", labels={"a": "b"}, ulimits=ULIMITS,
                                             allow_privileged=allow_privileged)


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def test_command_becomes_json_entrypoint_and_args_trail_the_image() -> None:
    args = create_args(ContainerSpec(name="c", image="img:1", command=("sh", "-c"), args=("echo a b", "x")))
    assert json.loads(flag_values(args, "--entrypoint")[0]) == ["sh", "-c"]
    assert args[-3:] == ["img:1", "echo a b", "x"]


def test_args_only_keep_the_image_entrypoint() -> None:
    args = create_args(ContainerSpec(name="c", image="img:1", args=("--port", "80")))
    assert "--entrypoint" not in args
    assert args[-3:] == ["img:1", "--port", "80"]


def test_fixed_flags_ulimits_labels_env_workdir_mounts() -> None:
    spec = ContainerSpec(name="c", image="img", env={"A": "1 2", "B": "x=y"}, working_dir="/w",
                         mounts=(Mount("/h", "/c", read_only=True), Mount("/h2", "/c2")), stdin=True, tty=True)
    args = create_args(spec)
    assert flag_values(args, "--pull") == ["never"]
    assert flag_values(args, "--log-driver") == ["k8s-file"]
    assert flag_values(args, "--ulimit") == ["nofile=20000:20000", "nproc=32768:32768"]
    assert flag_values(args, "--label") == ["a=b"]
    assert flag_values(args, "--env") == ["A=1 2", "B=x=y"]
    assert flag_values(args, "--workdir") == ["/w"]
    assert flag_values(args, "--volume") == ["/h:/c:ro", "/h2:/c2"]
    assert "--interactive" in args and "--tty" in args


def test_resources() -> None:
    spec = ContainerSpec(name="c", image="img", resources=Resources(
        cpu_limit_millis=1500, cpu_request_millis=250, memory_limit_bytes=64 << 20, memory_request_bytes=32 << 20))
    args = create_args(spec)
    assert flag_values(args, "--memory") == [str(64 << 20)]
    assert flag_values(args, "--memory-swap") == [str(64 << 20)]
    assert flag_values(args, "--memory-reservation") == [str(32 << 20)]
    assert flag_values(args, "--cpus") == ["1.500"]
    assert flag_values(args, "--cpu-shares") == ["256"]
    tiny = create_args(ContainerSpec(name="c", image="img", resources=Resources(cpu_request_millis=1)))
    assert flag_values(tiny, "--cpu-shares") == ["2"]


def test_security_context() -> None:
    spec = ContainerSpec(name="c", image="img", security=Security(
        run_as_user=1000, run_as_group=2000, read_only_root_filesystem=True,
        capabilities_add=("NET_ADMIN",), capabilities_drop=("ALL",)))
    args = create_args(spec)
    assert flag_values(args, "--user") == ["1000:2000"]
    assert "--read-only" in args
    assert flag_values(args, "--cap-add") == ["NET_ADMIN"]
    assert flag_values(args, "--cap-drop") == ["ALL"]
    privileged = ContainerSpec(name="c", image="img", security=Security(privileged=True))
    with pytest.raises(InvalidSpecError):
        create_args(privileged)
    assert "--privileged" in create_args(privileged, allow_privileged=True)


def test_invalid_env_and_mounts_are_rejected() -> None:
    with pytest.raises(InvalidSpecError):
        create_args(ContainerSpec(name="c", image="img", env={"A=B": "1"}))
    with pytest.raises(InvalidSpecError):
        create_args(ContainerSpec(name="c", image="img", mounts=(Mount("/a:b", "/c"),)))


def test_sandbox_args_and_names() -> None:
    spec = SandboxSpec(pod_uid="0123abcd-4567", namespace="ns", name="web", hostname="web-0",
                       ports=(PortMapping(80, host_port=8081, host_ip="127.0.0.1"), PortMapping(90)),
                       dns_servers=("10.43.0.10",), dns_searches=("ns.svc.cluster.local",))
    name = podman_spec.pod_name(spec)
    assert name == "shoal_ns_web_0123abcd"
    args = podman_spec.sandbox_create_args(spec, name=name, network="n1", infra_image="img",
                                           labels=podman_spec.sandbox_labels(spec, {"scope": "x"}))
    assert flag_values(args, "--network") == ["n1"]
    assert flag_values(args, "--hostname") == ["web-0"]
    assert flag_values(args, "-p") == ["127.0.0.1:8081:80/tcp"]
    assert flag_values(args, "--dns") == ["10.43.0.10"]
    assert flag_values(args, "--infra-command") == ["/bin/pause"]
    assert "shoal.pod.uid=0123abcd-4567" in flag_values(args, "--label")
    assert "scope=x" in flag_values(args, "--label")
    container = ContainerSpec(name="app", image="img", labels={"shoal.container.attempt": "2"})
    assert podman_spec.container_name(name, container) == "shoal_ns_web_0123abcd_app_2"


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
