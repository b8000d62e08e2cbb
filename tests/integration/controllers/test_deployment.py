"""The Deployment controller (with the ReplicaSet controller) against a live API server.

The test plays the kubelet (:class:`~tests.integration.controllers.workloads.Kubelet`) and drives
rollouts with the real kubectl where kubectl's own behaviour matters (``rollout status``,
``rollout undo``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal.client import resources
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj
from tests.integration.controllers import workloads
from tests.integration.controllers.helpers import eventually, running
from tests.integration.controllers.workloads import Kubelet, Recorder, condition, image_of
from tests.support.server import ShoalProcess

pytestmark = pytest.mark.e2e

CONTROLLERS = ("replicaset", "deployment")
REVISION = "deployment.kubernetes.io/revision"
HASH = "pod-template-hash"


def deployment(name: str, namespace: str, replicas: int, image: str = "busybox:1", **spec: Any) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": workloads.pod_template(labels, image), **spec}}


async def owned(client: ApiClient, namespace: str, name: str) -> list[Obj]:
    uid = (await client.get(resources.DEPLOYMENTS, name, namespace))["metadata"]["uid"]
    items = (await client.list(resources.REPLICASETS, namespace))["items"]
    return [rs for rs in items if any(ref.get("uid") == uid and ref.get("controller")
                                      for ref in rs["metadata"].get("ownerReferences") or [])]


def rolled_out(client: ApiClient, namespace: str, name: str, image: str | None = None) -> Any:
    async def check() -> bool:
        d = await client.get(resources.DEPLOYMENTS, name, namespace)
        status, want = d.get("status") or {}, d["spec"]["replicas"]
        progressing = condition(d, "Progressing") or {}
        return (status.get("observedGeneration") == d["metadata"]["generation"]
                and status.get("updatedReplicas", 0) == status.get("replicas", 0) == want
                and status.get("availableReplicas", 0) == want
                and progressing.get("reason") == "NewReplicaSetAvailable"
                and (image is None or image_of(d) == image))
    return check


async def set_image(client: ApiClient, namespace: str, name: str, image: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}}
    await client.patch(resources.DEPLOYMENTS, name, patch, namespace)


async def kubectl(server: ShoalProcess, *args: str) -> Any:
    return await asyncio.to_thread(server.kubectl, *args, check=False, timeout=60)


async def test_creates_a_replicaset_and_scales_it(client: ApiClient, ns: str) -> None:
    async with running(client, *CONTROLLERS), Kubelet(client, ns).running():
        await client.create(resources.DEPLOYMENTS, deployment("web", ns, 2))
        await eventually(rolled_out(client, ns, "web"), what="the first rollout")
        [rs] = await owned(client, ns, "web")
        pod_hash = rs["metadata"]["labels"][HASH]
        assert rs["metadata"]["name"] == f"web-{pod_hash}"
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH: pod_hash}
        assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", HASH: pod_hash}
        annotations = rs["metadata"]["annotations"]
        assert annotations[REVISION] == "1"
        assert annotations["deployment.kubernetes.io/desired-replicas"] == "2"
        assert annotations["deployment.kubernetes.io/max-replicas"] == "3"  # 25% of 2, rounded up
        assert all(p["metadata"]["labels"][HASH] == pod_hash for p in await workloads.pods(client, ns))
        d = await client.get(resources.DEPLOYMENTS, "web", ns)
        assert d["metadata"]["annotations"][REVISION] == "1"
        available = condition(d, "Available") or {}
        assert (available.get("status"), available.get("reason")) == ("True", "MinimumReplicasAvailable")
        assert (condition(d, "Progressing") or {}).get("message") == \
            f'ReplicaSet "web-{pod_hash}" has successfully progressed.'

        await client.patch(resources.DEPLOYMENTS, "web", {"spec": {"replicas": 4}}, ns, subresource="scale")

        async def scaled() -> bool:
            [current] = await owned(client, ns, "web")
            return bool(current["spec"]["replicas"] == 4 and await rolled_out(client, ns, "web")())

        await eventually(scaled, what="scaled to 4")
        messages = {e["message"] for e in (await client.list(resources.EVENTS, ns))["items"]
                    if e["reason"] == "ScalingReplicaSet"}
        assert f"Scaled up replica set web-{pod_hash} to 2 from 0" in messages
        assert f"Scaled up replica set web-{pod_hash} to 4 from 2" in messages


def _bounds(snapshot: dict[str, Obj], min_available: int, max_total: int) -> str | None:
    available = sum((rs.get("status") or {}).get("availableReplicas", 0) for rs in snapshot.values())
    total = sum(rs["spec"]["replicas"] for rs in snapshot.values())
    if available < min_available:
        return f"only {available} available"
    if total > max_total:
        return f"{total} replicas wanted"
    return None


async def test_rolls_within_bounds_and_undo_brings_the_old_replicaset_back(
        server: ShoalProcess, client: ApiClient, ns: str) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}
    async with running(client, *CONTROLLERS), Kubelet(client, ns).running():
        await client.create(resources.DEPLOYMENTS, deployment("web", ns, 4, strategy=strategy))
        await eventually(rolled_out(client, ns, "web"), what="the first rollout")
        [first] = await owned(client, ns, "web")
        async with Recorder(client, resources.REPLICASETS, ns).recording() as recorder:
            await set_image(client, ns, "web", "busybox:2")
            result = await kubectl(server, "rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
            assert result.returncode == 0, result.stderr
            assert 'deployment "web" successfully rolled out' in result.stdout
        violations = [v for s in recorder.snapshots if (v := _bounds(s, 3, 5))]
        assert not violations, violations
        assert len(recorder.snapshots) > 5, "the rollout should have taken several observed steps"
        rss = {rs["metadata"]["name"]: rs for rs in await owned(client, ns, "web")}
        assert len(rss) == 2
        second = next(rs for name, rs in rss.items() if name != first["metadata"]["name"])
        assert image_of(second) == "busybox:2" and second["spec"]["replicas"] == 4
        assert rss[first["metadata"]["name"]]["spec"]["replicas"] == 0
        assert second["metadata"]["annotations"][REVISION] == "2"

        result = await kubectl(server, "rollout", "undo", "deployment/web", "-n", ns)
        assert result.returncode == 0, result.stderr
        await eventually(rolled_out(client, ns, "web", "busybox:1"), what="the rollback")
        rss = {rs["metadata"]["name"]: rs for rs in await owned(client, ns, "web")}
        assert set(rss) == {first["metadata"]["name"], second["metadata"]["name"]}, "no third ReplicaSet"
        back = rss[first["metadata"]["name"]]
        assert back["spec"]["replicas"] == 4 and rss[second["metadata"]["name"]]["spec"]["replicas"] == 0
        assert back["metadata"]["annotations"][REVISION] == "3"
        assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
        d = await client.get(resources.DEPLOYMENTS, "web", ns)
        assert d["metadata"]["annotations"][REVISION] == "3"
        history = await kubectl(server, "rollout", "history", "deployment/web", "-n", ns)
        assert history.returncode == 0 and [line.split()[0] for line in history.stdout.splitlines()[2:]
                                            if line.strip()] == ["2", "3"]


async def test_a_stuck_rollout_exceeds_its_progress_deadline(server: ShoalProcess, client: ApiClient,
                                                             ns: str) -> None:
    good = Kubelet(client, ns, accept=lambda pod: image_of(pod) == "busybox:1")
    async with running(client, *CONTROLLERS), good.running():
        await client.create(resources.DEPLOYMENTS, deployment("web", ns, 2, progressDeadlineSeconds=3))
        await eventually(rolled_out(client, ns, "web"), what="the first rollout")
        await set_image(client, ns, "web", "busybox:broken")

        async def timed_out() -> bool:
            progressing = condition(await client.get(resources.DEPLOYMENTS, "web", ns), "Progressing") or {}
            return (progressing.get("status"), progressing.get("reason")) == ("False", "ProgressDeadlineExceeded")

        await eventually(timed_out, within=12.0, what="ProgressDeadlineExceeded")
        result = await kubectl(server, "rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
        assert result.returncode == 1
        assert 'deployment "web" exceeded its progress deadline' in result.stderr
        running_pods = await workloads.pods(client, ns)
        old = [p for p in running_pods if image_of(p) == "busybox:1"]
        assert len(old) == 2 and all(workloads.is_ready(p) for p in old), "the old pods keep serving"
        d = await client.get(resources.DEPLOYMENTS, "web", ns)
        assert (condition(d, "Available") or {}).get("status") == "True"
        message = (condition(d, "Progressing") or {}).get("message", "")
        assert message.startswith('ReplicaSet "web-') and message.endswith('" has timed out progressing.')


async def test_recreate_removes_old_pods_before_creating_new_ones(client: ApiClient, ns: str) -> None:
    async with running(client, *CONTROLLERS), Kubelet(client, ns).running():
        await client.create(resources.DEPLOYMENTS, deployment("db", ns, 2, strategy={"type": "Recreate"}))
        await eventually(rolled_out(client, ns, "db"), what="the first rollout")
        async with Recorder(client, resources.PODS, ns).recording() as recorder:
            await set_image(client, ns, "db", "busybox:2")
            await eventually(rolled_out(client, ns, "db", "busybox:2"), what="the recreate rollout")
        mixed = [sorted(image_of(p) for p in s.values()) for s in recorder.snapshots
                 if len({image_of(p) for p in s.values()}) > 1]
        assert not mixed, f"old and new pods ran together: {mixed[:3]}"
        assert any(not s for s in recorder.snapshots), "every old pod went before a new one came"


async def test_paused_deployments_scale_but_do_not_roll_and_history_is_limited(client: ApiClient,
                                                                              ns: str) -> None:
    async with running(client, *CONTROLLERS), Kubelet(client, ns).running():
        await client.create(resources.DEPLOYMENTS, deployment("web", ns, 1, revisionHistoryLimit=1))
        await eventually(rolled_out(client, ns, "web"), what="the first rollout")
        await client.patch(resources.DEPLOYMENTS, "web", {"spec": {"paused": True}}, ns)
        await set_image(client, ns, "web", "busybox:2")
        await client.patch(resources.DEPLOYMENTS, "web", {"spec": {"replicas": 2}}, ns, subresource="scale")

        async def paused_and_scaled() -> bool:
            d = await client.get(resources.DEPLOYMENTS, "web", ns)
            rss = await owned(client, ns, "web")
            return ((condition(d, "Progressing") or {}).get("reason") == "DeploymentPaused"
                    and len(rss) == 1 and rss[0]["spec"]["replicas"] == 2)

        await eventually(paused_and_scaled, what="a scaled, paused deployment with one RS")
        await client.patch(resources.DEPLOYMENTS, "web", {"spec": {"paused": False}}, ns)
        await eventually(rolled_out(client, ns, "web", "busybox:2"), what="the resumed rollout")
        await set_image(client, ns, "web", "busybox:3")
        await eventually(rolled_out(client, ns, "web", "busybox:3"), what="the third rollout")

        async def history_limited() -> bool:
            return sorted(image_of(rs) for rs in await owned(client, ns, "web")) == ["busybox:2", "busybox:3"]

        await eventually(history_limited, what="the oldest RS cleaned up (revisionHistoryLimit 1)")
        d = await client.get(resources.DEPLOYMENTS, "web", ns)
        assert d["metadata"]["annotations"][REVISION] == "3"


async def test_scaling_mid_rollout_is_proportional(client: ApiClient, ns: str) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    good = Kubelet(client, ns, accept=lambda pod: image_of(pod) == "busybox:1")
    async with running(client, *CONTROLLERS), good.running():
        await client.create(resources.DEPLOYMENTS, deployment("web", ns, 4, strategy=strategy))
        await eventually(rolled_out(client, ns, "web"), what="the first rollout")
        await set_image(client, ns, "web", "busybox:stuck")  # its pods never become ready

        async def sizes(wanted: dict[str, int]) -> bool:
            return {image_of(rs): rs["spec"]["replicas"] for rs in await owned(client, ns, "web")} == wanted

        await eventually(lambda: sizes({"busybox:1": 4, "busybox:stuck": 1}), what="the rollout stuck at 4+1")
        await client.patch(resources.DEPLOYMENTS, "web", {"spec": {"replicas": 8}}, ns, subresource="scale")
        # 5 pods were sized for max 5; now 8 + 1 surge = 9: old 4*9/5 = 7.2 -> 7, new 1*9/5 = 1.8 -> 2.
        await eventually(lambda: sizes({"busybox:1": 7, "busybox:stuck": 2}), what="proportional shares")
