"""Admission on the real write path (in-process ApiServer, real SQLite store).

Today's plugins (namespace lifecycle, Service IP and port allocation) behave as before, and
every write reaches admission with the request's full user.  The one stand-in is a
deliberately refusing plugin that only lets members of ``team-a`` write ConfigMaps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shoal.api.admission import (
    AdmissionChain,
    AdmissionPlugin,
    AdmissionRequest,
    DefaultTolerationSeconds,
    NamespaceLifecycle,
    Operation,
    ServiceAllocation,
    default_admission,
)
from shoal.api.allocators import IP_PREFIX, PORT_PREFIX, Release
from shoal.api.storage import ObjectStorage
from shoal.kube import errors
from shoal.kube.objects import Obj
from shoal.resources.registry import Registry, ResourceKind
from tests.support.api_harness import ApiHarness

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}}


class TeamOnlyConfigMaps:
    """Refuses ConfigMap writes by users outside ``team-a``; records what it was asked."""

    def __init__(self) -> None:
        self.seen: list[AdmissionRequest] = []

    async def admit(self, request: AdmissionRequest) -> None:
        self.seen.append(request)
        if request.kind.plural == "configmaps" and not request.user.in_group("team-a"):
            raise errors.ApiError(403, "Forbidden", f'configmaps "{request.name}" is forbidden: '
                                  f'{request.user.name} is not in team-a')

    async def reserve(self, request: AdmissionRequest) -> Release:
        async def nothing() -> None:
            return None

        return nothing

    async def release_unused(self, kind: ResourceKind, new: Obj | None, old: Obj) -> None:
        return None


def with_plugin(plugin: AdmissionPlugin) -> Callable[[ObjectStorage, Registry], AdmissionPlugin]:
    def build(storage: ObjectStorage, registry: Registry) -> AdmissionPlugin:
        return AdmissionChain([plugin, *default_admission(storage, registry).plugins])

    return build


async def test_admission_sees_the_full_user_of_every_write(tmp_path: Path) -> None:
    plugin = TeamOnlyConfigMaps()
    async with ApiHarness(tmp_path / "api", admission=with_plugin(plugin)) as harness:
        base = "/api/v1/namespaces/default/configmaps"
        body = {"metadata": {"name": "cm"}, "data": {"a": "1"}}
        async with harness.as_user("bob") as bob:
            refused = await bob.post(base, json=body)
            assert refused.status_code == 403
            assert refused.json()["message"] == 'configmaps "cm" is forbidden: bob is not in team-a'
        async with harness.as_user("alice") as alice:
            assert (await alice.post(base, json=body)).status_code == 201
            assert (await alice.put(f"{base}/cm", json={**body, "data": {"a": "2"}})).status_code == 200
            patched = await alice.patch(f"{base}/cm", content=b'{"data":{"a":"3"}}',
                                        headers={"Content-Type": "application/merge-patch+json"})
            assert patched.status_code == 200
            applied = await alice.patch(f"{base}/cm2", params={"fieldManager": "kubectl"},
                                        content=b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm2"}}',
                                        headers={"Content-Type": "application/apply-patch+yaml"})
            assert applied.status_code == 200  # Shoal answers 200 where Kubernetes answers 201
            assert (await alice.delete(f"{base}/cm", params={"dryRun": "All"})).status_code == 200
            assert (await alice.delete(f"{base}/cm")).status_code == 200
    configmaps = [r for r in plugin.seen if r.kind.plural == "configmaps"]
    ops = [(r.operation, r.name, r.user.name, r.dry_run, r.old_object is not None, r.object is not None)
           for r in configmaps]
    assert ops == [
        (Operation.CREATE, "cm", "bob", False, False, True),
        (Operation.CREATE, "cm", "alice", False, False, True),
        (Operation.UPDATE, "cm", "alice", False, True, True),
        (Operation.UPDATE, "cm", "alice", False, True, True),
        (Operation.CREATE, "cm2", "alice", False, False, True),
        (Operation.DELETE, "cm", "alice", True, True, False),
        (Operation.DELETE, "cm", "alice", False, True, False),
    ]
    assert configmaps[1].user.groups == ("team-a", "devs", "system:authenticated")
    assert configmaps[1].user.authenticated_by == "token"
    assert plugin.seen[0].user.name == "system:apiserver"  # the bootstrap namespace


async def test_subresource_writes_name_their_subresource(tmp_path: Path) -> None:
    plugin = TeamOnlyConfigMaps()
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c", "image": "demo"}]}}}}
    async with (ApiHarness(tmp_path / "api", admission=with_plugin(plugin)) as harness,
                harness.as_user("alice") as alice):
        base = "/apis/apps/v1/namespaces/default/deployments"
        assert (await alice.post(base, json=deployment)).status_code == 201
        scaled = await alice.patch(f"{base}/web/scale", content=b'{"spec":{"replicas":3}}',
                                   headers={"Content-Type": "application/merge-patch+json"})
        assert scaled.status_code == 200
        status = await alice.patch(f"{base}/web/status", content=b'{"status":{"replicas":1}}',
                                   headers={"Content-Type": "application/merge-patch+json"})
        assert status.status_code == 200
    assert [(r.operation, r.subresource) for r in plugin.seen if r.kind.plural == "deployments"] == [
        (Operation.CREATE, ""), (Operation.UPDATE, "scale"), (Operation.UPDATE, "status")]


async def test_namespace_lifecycle_is_unchanged(tmp_path: Path) -> None:
    async with ApiHarness(tmp_path / "api") as harness, harness.as_user("alice") as alice:
        assert isinstance(harness.api.handlers.writer.admission, AdmissionChain)
        assert [type(p) for p in harness.api.handlers.writer.admission.plugins] == [
            NamespaceLifecycle, DefaultTolerationSeconds, ServiceAllocation]
        missing = await alice.post("/api/v1/namespaces/nope/configmaps", json={"metadata": {"name": "x"}})
        assert missing.status_code == 404
        assert missing.json()["message"] == 'namespaces "nope" not found'
        assert (await alice.post("/api/v1/namespaces", json={"metadata": {"name": "doomed"}})).status_code == 201
        assert (await alice.delete("/api/v1/namespaces/doomed")).status_code == 200
        refused = await alice.post("/api/v1/namespaces/doomed/configmaps", json={"metadata": {"name": "x"}})
        assert refused.status_code == 403
        assert refused.json()["message"] == ('configmaps "x" is forbidden: unable to create new content in '
                                             "namespace doomed because it is being terminated")
        assert refused.json()["details"]["causes"] == [{"reason": "NamespaceTerminating",
                                                        "field": "metadata.namespace"}]


async def test_service_allocation_is_unchanged(tmp_path: Path) -> None:
    async with ApiHarness(tmp_path / "api") as harness, harness.as_user("alice") as alice:
        store = harness.storage.store
        base = "/api/v1/namespaces/default/services"
        dry = await alice.post(base, json=SERVICE, params={"dryRun": "All"})
        assert dry.status_code == 201
        assert (await store.list(IP_PREFIX)).items == []
        created = (await alice.post(base, json=SERVICE)).json()
        ip, port = created["spec"]["clusterIP"], created["spec"]["ports"][0]["nodePort"]
        assert ip.startswith("10.43.") and 30000 <= port <= 32767
        assert await store.get(IP_PREFIX + ip) is not None
        assert await store.get(f"{PORT_PREFIX}{port}") is not None
        changed = await alice.patch(f"{base}/web", content=b'{"spec":{"type":"ClusterIP",'
                                    b'"externalTrafficPolicy":null,"ports":[{"port":80}]}}',
                                    headers={"Content-Type": "application/merge-patch+json"})
        assert changed.status_code == 200, changed.text
        assert await store.get(f"{PORT_PREFIX}{port}") is None  # released after the update
        assert (await alice.delete(f"{base}/web")).status_code == 200
        assert await store.get(IP_PREFIX + ip) is None


async def test_a_failed_reserve_gives_back_earlier_claims(tmp_path: Path) -> None:
    given_back: list[str] = []

    class Claims:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name, self.fail = name, fail

        async def admit(self, request: AdmissionRequest) -> None:
            return None

        async def reserve(self, request: AdmissionRequest) -> Release:
            if self.fail and request.kind.plural == "configmaps":
                raise errors.internal("range is full")

            async def release() -> None:
                given_back.append(self.name)

            return release

        async def release_unused(self, kind: ResourceKind, new: Obj | None, old: Obj) -> None:
            return None

    def build(storage: ObjectStorage, registry: Registry) -> AdmissionPlugin:
        return AdmissionChain([Claims("first"), Claims("second"), Claims("third", fail=True)])

    async with ApiHarness(tmp_path / "api", admission=build) as harness, harness.as_user("alice") as alice:
        failed = await alice.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "x"}})
        assert failed.status_code == 500
    assert given_back == ["second", "first"]  # only the ConfigMap create failed
