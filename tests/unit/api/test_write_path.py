"""The API write path end to end, in process: the real ApiServer on a real SQLite store.

Covers, through HTTP requests to the ASGI app (:mod:`tests.support.api_harness`):

* ``metadata.generation``: 1 on create (client values ignored), +1 on every spec change made by
  PUT, merge/strategic/JSON patch, apply or the scale subresource, unchanged by metadata-only
  and status changes;
* ``resourceVersion`` compare-and-swap: a PUT (main resource, ``status``, ``scale``) carrying a
  stale resourceVersion is a 409 ``Conflict`` Status and changes nothing; without one (or with
  the current one) it succeeds; a write that loses the race inside the server is retried only
  when the client named no version;
* ``managedFields``: the Update manager (``fieldManager`` or the User-Agent's product) of
  create, update and status writes; Apply managers, their conflicts and ``force``;
* defaults before validation: a field the kind's defaults fill satisfies validation; invalid
  input is a 422 ``Invalid`` (or 400 for unknown fields) naming the field, and writes nothing
  (the store's revision does not move); ``dryRun=All`` writes nothing either.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx
import pytest

from shoal.api.writes import WriteContext
from shoal.client.errors import ConflictError
from shoal.client.resources import DEPLOYMENTS
from shoal.client.rest import ApiClient
from shoal.kube import errors
from shoal.kube.objects import Obj
from tests.support.api_harness import TEST_USER, ApiHarness, ok, status_of

NS = "default"
DEPLOYS = f"/apis/apps/v1/namespaces/{NS}/deployments"
REPLICASETS = f"/apis/apps/v1/namespaces/{NS}/replicasets"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}


def deployment(name: str = "web", replicas: int = 1, image: str = "busybox:1", **meta: Any) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, **meta},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main", "image": image}]}}}}


def created_by_apply(response: httpx.Response) -> Obj:
    """An apply that created its object: Kubernetes answers 201, Shoal so far 200; either will do."""
    assert response.status_code in (200, 201), response.text
    body: Obj = response.json()
    return body


async def create(h: ApiHarness, obj: Obj, path: str = DEPLOYS, **params: str) -> Obj:
    return ok(await h.http.post(path, json=obj, params=params), 201)


def meta(obj: Obj) -> Obj:
    m: Obj = obj["metadata"]
    return m


# -- generation ----------------------------------------------------------------------------


async def test_create_sets_generation_one_and_server_owned_metadata(harness: ApiHarness) -> None:
    body = deployment(generation=7, uid="client-uid", resourceVersion="99",
                      creationTimestamp="2001-01-01T00:00:00Z")
    created = await create(harness, body)
    m = meta(created)
    assert m["generation"] == 1
    assert m["uid"] != "client-uid" and len(m["uid"]) == 36
    assert m["creationTimestamp"] != "2001-01-01T00:00:00Z"
    assert m["resourceVersion"] == str(await harness.revision())
    stored = await harness.stored(harness.kind("deployments", "apps"), NS, "web")
    assert stored is not None and meta(stored)["generation"] == 1


async def test_spec_changes_bump_generation_by_one_each(harness: ApiHarness) -> None:
    created = await create(harness, deployment())
    put = copy.deepcopy(created)
    put["spec"]["replicas"] = 2
    after_put = ok(await harness.http.put(f"{DEPLOYS}/web", json=put))
    assert meta(after_put)["generation"] == 2

    merged = ok(await harness.http.patch(f"{DEPLOYS}/web", json={"spec": {"replicas": 3}}, headers=MERGE))
    assert meta(merged)["generation"] == 3

    strategic = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}}}}
    patched = ok(await harness.http.patch(f"{DEPLOYS}/web", json=strategic, headers=STRATEGIC))
    assert meta(patched)["generation"] == 4
    assert patched["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:2"

    ops = [{"op": "add", "path": "/spec/minReadySeconds", "value": 5}]
    json_patched = ok(await harness.http.patch(f"{DEPLOYS}/web", json=ops, headers=JSON_PATCH))
    assert meta(json_patched)["generation"] == 5

    scaled = ok(await harness.http.patch(f"{DEPLOYS}/web/scale", json={"spec": {"replicas": 7}}, headers=MERGE))
    assert scaled["spec"]["replicas"] == 7
    final = ok(await harness.http.get(f"{DEPLOYS}/web"))
    assert meta(final)["generation"] == 6


async def test_apply_of_a_new_spec_bumps_generation(harness: ApiHarness) -> None:
    applied = created_by_apply(await harness.http.patch(f"{DEPLOYS}/web", content=_yaml(deployment()),
                                                        headers=APPLY, params={"fieldManager": "carol"}))
    assert meta(applied)["generation"] == 1
    changed = ok(await harness.http.patch(f"{DEPLOYS}/web", content=_yaml(deployment(replicas=4)),
                                          headers=APPLY, params={"fieldManager": "carol"}))
    assert changed["spec"]["replicas"] == 4 and meta(changed)["generation"] == 2


async def test_metadata_changes_do_not_bump_generation(harness: ApiHarness) -> None:
    created = await create(harness, deployment())
    # Labels only: Kubernetes bumps a Deployment's generation on annotation changes too.
    labelled = ok(await harness.http.patch(f"{DEPLOYS}/web", json={"metadata": {"labels": {"tier": "front"}}},
                                           headers=MERGE))
    assert meta(labelled)["labels"] == {"tier": "front"}
    assert int(meta(labelled)["resourceVersion"]) > int(meta(created)["resourceVersion"])
    assert meta(labelled)["generation"] == 1
    put = copy.deepcopy(labelled)
    put["metadata"]["finalizers"] = ["example.com/keep"]
    assert meta(ok(await harness.http.put(f"{DEPLOYS}/web", json=put)))["generation"] == 1


async def test_status_changes_do_not_bump_generation(harness: ApiHarness) -> None:
    created = await create(harness, deployment())
    body = copy.deepcopy(created)
    body["status"] = {"replicas": 1, "observedGeneration": 1}
    written = ok(await harness.http.put(f"{DEPLOYS}/web/status", json=body))
    assert written["status"]["replicas"] == 1
    assert meta(written)["generation"] == 1
    # Through the main resource the status is not writable at all (a status subresource exists).
    body = copy.deepcopy(written)
    body["status"] = {"replicas": 5}
    again = ok(await harness.http.put(f"{DEPLOYS}/web", json=body))
    assert again["status"]["replicas"] == 1 and meta(again)["generation"] == 1


async def test_a_put_that_changes_nothing_keeps_generation_and_version(harness: ApiHarness) -> None:
    created = await create(harness, deployment(), fieldManager="alice")
    same = ok(await harness.http.put(f"{DEPLOYS}/web", json=created, params={"fieldManager": "alice"}))
    assert meta(same)["generation"] == 1
    assert meta(same)["resourceVersion"] == meta(created)["resourceVersion"]


# -- resourceVersion compare-and-swap ------------------------------------------------------------


async def test_put_with_a_stale_resource_version_is_a_conflict(harness: ApiHarness) -> None:
    created = await create(harness, deployment())
    first = copy.deepcopy(created)
    first["spec"]["replicas"] = 2
    current = ok(await harness.http.put(f"{DEPLOYS}/web", json=first))
    before = await harness.revision()

    stale = copy.deepcopy(created)  # still carries the first resourceVersion
    stale["spec"]["replicas"] = 9
    answer = status_of(await harness.http.put(f"{DEPLOYS}/web", json=stale), 409, "Conflict")
    assert answer["message"] == ('Operation cannot be fulfilled on deployments.apps "web": the object has '
                                 "been modified; please apply your changes to the latest version and try again")
    assert answer["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    assert await harness.revision() == before
    now = ok(await harness.http.get(f"{DEPLOYS}/web"))
    assert now["spec"]["replicas"] == 2 and meta(now)["resourceVersion"] == meta(current)["resourceVersion"]


async def test_put_without_a_resource_version_overwrites(harness: ApiHarness) -> None:
    created = await create(harness, deployment())
    ok(await harness.http.patch(f"{DEPLOYS}/web", json={"spec": {"replicas": 2}}, headers=MERGE))
    blind = copy.deepcopy(created)
    del blind["metadata"]["resourceVersion"]
    blind["spec"]["replicas"] = 9
    written = ok(await harness.http.put(f"{DEPLOYS}/web", json=blind))
    assert written["spec"]["replicas"] == 9 and meta(written)["generation"] == 3


async def test_put_with_the_current_resource_version_succeeds(harness: ApiHarness) -> None:
    created = await create(harness, deployment())
    body = copy.deepcopy(created)
    body["spec"]["replicas"] = 3
    written = ok(await harness.http.put(f"{DEPLOYS}/web", json=body))
    assert int(meta(written)["resourceVersion"]) > int(meta(created)["resourceVersion"])
    assert meta(written)["resourceVersion"] == str(await harness.revision())


async def test_status_and_scale_puts_check_the_resource_version_too(harness: ApiHarness) -> None:
    created = await create(harness, deployment())
    ok(await harness.http.patch(f"{DEPLOYS}/web", json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE))
    stale_status = {**copy.deepcopy(created), "status": {"replicas": 3}}
    status_of(await harness.http.put(f"{DEPLOYS}/web/status", json=stale_status), 409, "Conflict")
    scale: Obj = {"apiVersion": "autoscaling/v1", "kind": "Scale",
             "metadata": {"name": "web", "namespace": NS, "resourceVersion": meta(created)["resourceVersion"]},
             "spec": {"replicas": 5}}
    status_of(await harness.http.put(f"{DEPLOYS}/web/scale", json=scale), 409, "Conflict")
    now = ok(await harness.http.get(f"{DEPLOYS}/web"))
    assert now["spec"]["replicas"] == 1 and now["status"] == {}
    del scale["metadata"]["resourceVersion"]
    assert ok(await harness.http.put(f"{DEPLOYS}/web/scale", json=scale))["spec"]["replicas"] == 5


async def test_the_rest_client_raises_conflict_on_a_stale_update(harness: ApiHarness,
                                                               harness_client: ApiClient) -> None:
    created = await harness_client.create(DEPLOYMENTS, deployment(), NS)
    ok(await harness.http.patch(f"{DEPLOYS}/web", json={"spec": {"replicas": 2}}, headers=MERGE))
    with pytest.raises(ConflictError):
        await harness_client.update(DEPLOYMENTS, created)


async def test_a_race_inside_the_server_is_retried_only_without_a_version(harness: ApiHarness) -> None:
    """Another write lands between the read and the compare-and-swap of ``write_back``."""
    kind = harness.kind("configmaps")
    ctx = WriteContext(user=TEST_USER)
    created = await harness.writer.create(kind, NS, {"metadata": {"name": "cm"}, "data": {"a": "1"}}, ctx)
    calls = 0

    async def compute(old: Obj) -> Obj:
        nonlocal calls
        calls += 1
        if calls == 1:  # the competing writer wins the race
            rival = copy.deepcopy(old)
            rival["data"]["rival"] = "yes"
            await harness.storage.update(kind, rival, int(meta(old)["resourceVersion"]))
        new = copy.deepcopy(old)
        new["data"]["mine"] = "yes"
        return new

    wanted = str(meta(created)["resourceVersion"])
    with pytest.raises(errors.ApiError) as refused:
        await harness.writer.write_back(kind, NS, "cm", compute, ctx, wanted)
    assert (refused.value.code, refused.value.reason) == (409, "Conflict")
    stored = await harness.stored(kind, NS, "cm")
    assert stored is not None and stored["data"] == {"a": "1", "rival": "yes"}

    calls = 0
    result = await harness.writer.write_back(kind, NS, "cm", compute, ctx)
    assert calls == 2  # lost the race once, read again, won
    assert result["data"] == {"a": "1", "rival": "yes", "mine": "yes"}


async def test_storage_update_on_a_stale_revision_is_a_conflict(harness: ApiHarness) -> None:
    kind = harness.kind("configmaps")
    created = await harness.writer.create(kind, NS, {"metadata": {"name": "cm"}, "data": {"a": "1"}},
                                          WriteContext(user=TEST_USER))
    revision = int(meta(created)["resourceVersion"])
    first = copy.deepcopy(created)
    first["data"]["a"] = "2"
    await harness.storage.update(kind, first, revision)
    second = copy.deepcopy(created)
    second["data"]["a"] = "3"
    with pytest.raises(errors.ApiError) as refused:
        await harness.storage.update(kind, second, revision)
    assert (refused.value.code, refused.value.reason) == (409, "Conflict")
    stored = await harness.stored(kind, NS, "cm")
    assert stored is not None and stored["data"] == {"a": "2"}


async def test_concurrent_blind_writers_all_land(harness: ApiHarness) -> None:
    """Merge patches carry no resourceVersion: racing ones are retried, none is lost."""
    ok(await harness.http.post(CONFIGMAPS, json={"metadata": {"name": "cm"}, "data": {}}), 201)
    answers = await asyncio.gather(*(
        harness.http.patch(f"{CONFIGMAPS}/cm", json={"data": {f"k{i}": str(i)}}, headers=MERGE)
        for i in range(8)))
    assert all(a.status_code == 200 for a in answers)
    final = ok(await harness.http.get(f"{CONFIGMAPS}/cm"))
    assert final["data"] == {f"k{i}": str(i) for i in range(8)}


# -- managedFields -----------------------------------------------------------------------------


def managers(obj: Obj) -> dict[tuple[str, str, str], Obj]:
    """(manager, operation, subresource) -> fieldsV1 of each managedFields entry."""
    out: dict[tuple[str, str, str], Obj] = {}
    for entry in meta(obj).get("managedFields") or []:
        assert entry["fieldsType"] == "FieldsV1" and entry["apiVersion"] == "apps/v1" and entry["time"]
        out[(entry["manager"], entry["operation"], entry.get("subresource", ""))] = entry["fieldsV1"]
    return out


def owns_replicas(fields: Obj) -> bool:
    return "f:replicas" in (fields.get("f:spec") or {})


async def test_update_managers_are_recorded(harness: ApiHarness) -> None:
    created = await create(harness, deployment(), fieldManager="alice")
    assert list(managers(created)) == [("alice", "Update", "")]
    alice = managers(created)[("alice", "Update", "")]
    assert owns_replicas(alice) and "f:template" in alice["f:spec"]

    body = copy.deepcopy(created)
    body["spec"]["replicas"] = 2
    updated = ok(await harness.http.put(f"{DEPLOYS}/web", json=body, params={"fieldManager": "bob"}))
    found = managers(updated)
    assert set(found) == {("alice", "Update", ""), ("bob", "Update", "")}
    assert owns_replicas(found[("bob", "Update", "")])
    assert not owns_replicas(found[("alice", "Update", "")])  # bob took the field he changed
    assert "f:template" in found[("alice", "Update", "")]["f:spec"]

    status = {**copy.deepcopy(updated), "status": {"replicas": 2}}
    written = ok(await harness.http.put(f"{DEPLOYS}/web/status", json=status, params={"fieldManager": "ctl"}))
    assert "f:replicas" in managers(written)[("ctl", "Update", "status")]["f:status"]


async def test_without_field_manager_the_user_agent_names_the_manager(harness: ApiHarness) -> None:
    response = await harness.http.post(DEPLOYS, json=deployment(),
                                       headers={"User-Agent": "kubectl/v1.32.0 (linux/amd64) kubernetes/abc"})
    assert list(managers(ok(response, 201))) == [("kubectl", "Update", "")]


async def test_apply_managers_conflicts_and_force(harness: ApiHarness) -> None:
    path = f"{DEPLOYS}/web"
    carol = created_by_apply(await harness.http.patch(path, content=_yaml(deployment()), headers=APPLY,
                                                      params={"fieldManager": "carol"}))
    assert list(managers(carol)) == [("carol", "Apply", "")]
    assert owns_replicas(managers(carol)[("carol", "Apply", "")])

    partial = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 3}}
    before = await harness.revision()
    conflict = status_of(await harness.http.patch(path, content=_yaml(partial), headers=APPLY,
                                                  params={"fieldManager": "dave"}), 409, "Conflict")
    causes = conflict["details"]["causes"]
    assert [(c["reason"], c["field"]) for c in causes] == [("FieldManagerConflict", ".spec.replicas")]
    assert '"carol"' in causes[0]["message"]
    assert await harness.revision() == before

    forced = ok(await harness.http.patch(path, content=_yaml(partial), headers=APPLY,
                                         params={"fieldManager": "dave", "force": "true"}))
    assert forced["spec"]["replicas"] == 3
    found = managers(forced)
    assert owns_replicas(found[("dave", "Apply", "")])
    assert not owns_replicas(found[("carol", "Apply", "")])


# -- defaults, then validation -----------------------------------------------------------------


async def test_defaults_are_applied_before_validation(harness: ApiHarness) -> None:
    """A ReplicaSet template must have restartPolicy Always; leaving it out is fine because the
    default fills it in before validation looks."""
    rs: Obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
          "spec": {"selector": {"matchLabels": {"app": "rs"}},
                   "template": {"metadata": {"labels": {"app": "rs"}},
                                "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}}}}
    created = await create(harness, rs, REPLICASETS)
    pod_spec = created["spec"]["template"]["spec"]
    assert created["spec"]["replicas"] == 1
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert pod_spec["containers"][0]["terminationMessagePolicy"] == "File"

    rs["metadata"]["name"] = "rs2"
    rs["spec"]["template"]["spec"]["restartPolicy"] = "Never"  # an explicit value is validated
    answer = status_of(await harness.http.post(REPLICASETS, json=rs), 422, "Invalid")
    assert [c["field"] for c in answer["details"]["causes"]] == ["spec.template.spec.restartPolicy"]


async def test_defaults_apply_on_update_too(harness: ApiHarness) -> None:
    created = await create(harness, deployment())
    body = copy.deepcopy(created)
    del body["spec"]["strategy"]
    del body["spec"]["template"]["spec"]["restartPolicy"]
    written = ok(await harness.http.put(f"{DEPLOYS}/web", json=body))
    assert written["spec"]["strategy"] == created["spec"]["strategy"]
    assert written["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert meta(written)["generation"] == 1  # defaulted back to what was stored: no spec change


@pytest.mark.parametrize(("change", "code", "reason", "field", "text"), [
    ({"replicas": -1}, 422, "Invalid", "spec.replicas",
     'Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'),
    ({"replicas": "three"}, 422, "Invalid", "spec.replicas", "spec.replicas"),
    ({"selector": {"matchLabels": {"app": "other"}}}, 422, "Invalid", "spec.template.metadata.labels",
     "`selector` does not match template `labels`"),
    ({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "main"}]}}},
     422, "Invalid", "spec.template.spec.containers[0].image", "spec.template.spec.containers[0].image: Required"),
    ({"bogus": 1}, 400, "BadRequest", "", 'unknown field "spec.bogus"'),
])
async def test_invalid_input_names_the_field_and_writes_nothing(
        harness: ApiHarness, change: Obj, code: int, reason: str, field: str, text: str) -> None:
    body = deployment()
    body["spec"].update(change)
    before = await harness.revision()
    # Strict, as kubectl asks for it (without it the unknown field is a warning: Kubernetes' Warn).
    answer = status_of(await harness.http.post(DEPLOYS, json=body, params={"fieldValidation": "Strict"}),
                       code, reason)
    assert text in answer["message"]
    if field:
        assert field in [c["field"] for c in answer["details"]["causes"]]
        assert answer["details"]["name"] == "web" and answer["details"]["kind"] == "Deployment"
    assert await harness.revision() == before
    status_of(await harness.http.get(f"{DEPLOYS}/web"), 404, "NotFound")


async def test_an_invalid_update_changes_nothing(harness: ApiHarness) -> None:
    created = await create(harness, deployment())
    before = await harness.revision()
    body = copy.deepcopy(created)
    body["spec"]["replicas"] = -5
    status_of(await harness.http.put(f"{DEPLOYS}/web", json=body), 422, "Invalid")
    body = copy.deepcopy(created)
    body["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
    body["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    immutable = status_of(await harness.http.put(f"{DEPLOYS}/web", json=body), 422, "Invalid")
    assert [c["field"] for c in immutable["details"]["causes"]] == ["spec.selector"]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": ""}]}}}}
    status_of(await harness.http.patch(f"{DEPLOYS}/web", json=patch, headers=STRATEGIC), 422, "Invalid")
    assert await harness.revision() == before
    assert ok(await harness.http.get(f"{DEPLOYS}/web")) == created


async def test_dry_run_runs_the_pipeline_but_writes_nothing(harness: ApiHarness) -> None:
    before = await harness.revision()
    answer = ok(await harness.http.post(DEPLOYS, json=deployment(), params={"dryRun": "All"}), 201)
    assert meta(answer)["generation"] == 1
    assert answer["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted
    bad = deployment()
    bad["spec"]["replicas"] = -1
    status_of(await harness.http.post(DEPLOYS, json=bad, params={"dryRun": "All"}), 422, "Invalid")
    assert await harness.revision() == before
    status_of(await harness.http.get(f"{DEPLOYS}/web"), 404, "NotFound")


async def test_unauthenticated_writes_are_refused(harness: ApiHarness) -> None:
    before = await harness.revision()
    response = await harness.http.post(DEPLOYS, json=deployment(), headers={"Authorization": "Bearer wrong"})
    status_of(response, 401, "Unauthorized")
    assert await harness.revision() == before


def _yaml(obj: Obj) -> bytes:
    import yaml

    return yaml.safe_dump(obj).encode()
