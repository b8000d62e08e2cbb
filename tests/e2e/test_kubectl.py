"""Real /usr/bin/kubectl against a real shoal server (issue 2's end-to-end list)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.server import ShoalProcess

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).parents[2] / "examples" / "web.yaml"


def test_apply_creates_and_reapply_changes(shoal: ShoalProcess, tmp_path: Path) -> None:
    out = shoal.kubectl("apply", "-f", str(EXAMPLE)).stdout
    assert "deployment.apps/web created" in out
    assert "service/web created" in out
    assert "configmap/web-config created" in out
    assert "secret/web-secret created" in out
    dep = json.loads(shoal.kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert dep["metadata"]["generation"] == 1
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"  # server-side defaults
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]

    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    docs[0]["spec"]["template"]["spec"]["containers"][0]["image"] = "shoal-demo:2"
    docs[0]["metadata"]["labels"]["tier"] = "front"
    changed = tmp_path / "web2.yaml"
    changed.write_text(yaml.safe_dump_all(docs))
    out = shoal.kubectl("apply", "-f", str(changed)).stdout
    assert "deployment.apps/web configured" in out
    assert "service/web unchanged" in out
    dep = json.loads(shoal.kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "shoal-demo:2"
    assert dep["metadata"]["labels"]["tier"] == "front"
    assert dep["metadata"]["generation"] == 2

    # a metadata-only change does not bump the generation
    shoal.kubectl("label", "deployment", "web", "extra=yes")
    dep = json.loads(shoal.kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert dep["metadata"]["generation"] == 2


def test_get_columns_and_formats(shoal: ShoalProcess) -> None:
    shoal.kubectl("apply", "-f", str(EXAMPLE))
    out = shoal.kubectl("get", "deployments").stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert out[1].split()[:2] == ["web", "0/3"]
    wide = shoal.kubectl("get", "deployments", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES",
                               "SELECTOR"]
    assert "app=web" in wide[1]
    svc = shoal.kubectl("get", "svc", "web").stdout.splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    cells = svc[1].split()
    assert cells[1] == "NodePort" and cells[2].startswith("10.43.") and re.fullmatch(r"80:3\d{4}/TCP", cells[4])
    as_yaml = yaml.safe_load(shoal.kubectl("get", "cm", "web-config", "-o", "yaml").stdout)
    assert as_yaml["data"] == {"greeting": "hello"}
    secret = json.loads(shoal.kubectl("get", "secret", "web-secret", "-o", "json").stdout)
    assert "stringData" not in secret and secret["data"]["password"]
    names = shoal.kubectl("get", "all", "-o", "name").stdout.split()
    assert "deployment.apps/web" in names and "service/web" in names
    namespaces = shoal.kubectl("get", "ns").stdout
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert ns in namespaces
    allns = shoal.kubectl("get", "cm", "-A").stdout.splitlines()
    assert allns[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == ["default", "web-config"] for line in allns[1:])


def test_get_watch_sees_a_change(shoal: ShoalProcess) -> None:
    shoal.kubectl("create", "configmap", "watched", "--from-literal=a=1")
    cache = shoal.data_dir.parent / "kubectl-cache"
    proc = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(shoal.kubeconfig), "--cache-dir", str(cache), "get", "cm",
         "watched", "-w", "-o", "jsonpath={.data.a}{\"\\n\"}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "1"
        shoal.kubectl("patch", "cm", "watched", "--type=merge", "-p", '{"data":{"a":"2"}}')
        assert proc.stdout.readline().strip() == "2"
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_scale_and_patch_types(shoal: ShoalProcess) -> None:
    shoal.kubectl("apply", "-f", str(EXAMPLE))
    assert "deployment.apps/web scaled" in shoal.kubectl("scale", "deployment", "web", "--replicas", "5").stdout
    dep = json.loads(shoal.kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 5
    shoal.kubectl("patch", "deploy", "web", "--type=merge", "-p", '{"spec":{"minReadySeconds":3}}')
    shoal.kubectl("patch", "deploy", "web", "--type=json", "-p",
                  '[{"op":"replace","path":"/spec/revisionHistoryLimit","value":4}]')
    shoal.kubectl("patch", "deploy", "web", "-p",
                  '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"X","value":"y"}]}]}}}}')
    dep = json.loads(shoal.kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert dep["spec"]["minReadySeconds"] == 3
    assert dep["spec"]["revisionHistoryLimit"] == 4
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "X", "value": "y"} in env
    assert any(e["name"] == "GREETING" for e in env)  # strategic merge kept the other entry


def test_create_generators(shoal: ShoalProcess) -> None:
    # these commands send Kubernetes protobuf bodies
    shoal.kubectl("create", "namespace", "gen")
    shoal.kubectl("-n", "gen", "create", "secret", "generic", "s1", "--from-literal=user=admin")
    shoal.kubectl("-n", "gen", "create", "configmap", "c1", "--from-literal=k=v")
    shoal.kubectl("-n", "gen", "create", "deployment", "d1", "--image=shoal-demo:1", "--replicas=2")
    secret = json.loads(shoal.kubectl("-n", "gen", "get", "secret", "s1", "-o", "json").stdout)
    assert secret["data"] == {"user": "YWRtaW4="}
    cm = json.loads(shoal.kubectl("-n", "gen", "get", "cm", "c1", "-o", "json").stdout)
    assert cm["data"] == {"k": "v"}
    dep = json.loads(shoal.kubectl("-n", "gen", "get", "deploy", "d1", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "shoal-demo:1"


def test_describe_with_events(shoal: ShoalProcess, tmp_path: Path) -> None:
    shoal.kubectl("apply", "-f", str(EXAMPLE))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "labels": {"app": "solo"}},
           "spec": {"containers": [{"name": "main", "image": "shoal-demo:1"}]}}
    shoal.kubectl("apply", "-f", "-", input=json.dumps(pod))
    for kind, name, reason in (("Pod", "solo", "Scheduled"), ("Deployment", "web", "ScalingReplicaSet")):
        obj = json.loads(shoal.kubectl("get", kind.lower(), name, "-o", "json").stdout)
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"name": f"{name}.e2e", "namespace": "default"},
                 "involvedObject": {"kind": kind, "name": name, "namespace": "default",
                                    "uid": obj["metadata"]["uid"],
                                    "apiVersion": "apps/v1" if kind == "Deployment" else "v1"},
                 "reason": reason, "message": f"{reason} happened to {name}", "type": "Normal",
                 "count": 1, "source": {"component": "e2e"},
                 "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"}
        shoal.kubectl("apply", "-f", "-", input=json.dumps(event))
    described = shoal.kubectl("describe", "deployment", "web").stdout
    assert "StrategyType:" in described and "RollingUpdate" in described
    assert "ScalingReplicaSet happened to web" in described
    described = shoal.kubectl("describe", "pod", "solo").stdout
    assert "Scheduled happened to solo" in described
    assert "shoal-demo:1" in described


def test_delete_cascade_and_wait(shoal: ShoalProcess) -> None:
    shoal.kubectl("create", "namespace", "doomed")
    shoal.kubectl("-n", "doomed", "create", "configmap", "c", "--from-literal=a=b")
    owner = json.loads(shoal.kubectl("-n", "doomed", "create", "configmap", "owner", "-o", "json").stdout)
    child = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "child", "namespace": "doomed", "ownerReferences": [
                 {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                  "uid": owner["metadata"]["uid"]}]}}
    shoal.kubectl("apply", "-f", "-", input=json.dumps(child))
    shoal.kubectl("-n", "doomed", "delete", "configmap", "owner", "--cascade=foreground")
    shoal.kubectl("-n", "doomed", "wait", "--for=delete", "configmap/child", "--timeout=30s")
    shoal.kubectl("delete", "namespace", "doomed", "--wait=false")
    shoal.kubectl("wait", "--for=delete", "namespace/doomed", "--timeout=60s")
    assert shoal.kubectl("get", "ns", "doomed", check=False).returncode != 0


def test_discovery_and_explain(shoal: ShoalProcess) -> None:
    resources = shoal.kubectl("api-resources").stdout.splitlines()
    assert resources[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    table = {line.split()[0]: line.split() for line in resources[1:]}
    assert table["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    for name in ("pods", "services", "endpoints", "configmaps", "secrets", "nodes", "events",
                 "serviceaccounts", "namespaces", "replicasets", "leases", "endpointslices"):
        assert name in table
    explained = shoal.kubectl("explain", "deployment.spec.replicas").stdout
    assert "replicas" in explained and "Number of desired pods" in explained


def test_bad_manifests_are_refused_and_nothing_stored(shoal: ShoalProcess) -> None:
    base = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "bad"}},
                     "template": {"metadata": {"labels": {"app": "bad"}},
                                  "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}
    three = json.loads(json.dumps(base))
    three["spec"]["replicas"] = "three"
    result = shoal.kubectl("apply", "-f", "-", input=json.dumps(three), check=False)
    assert result.returncode != 0 and "spec.replicas" in result.stderr
    no_image = json.loads(json.dumps(base))
    del no_image["spec"]["template"]["spec"]["containers"][0]["image"]
    result = shoal.kubectl("apply", "-f", "-", input=json.dumps(no_image), check=False)
    assert result.returncode != 0
    assert "spec.template.spec.containers[0].image: Required value" in result.stderr
    unknown = json.loads(json.dumps(base))
    unknown["spec"]["replicaz"] = 2
    result = shoal.kubectl("apply", "--validate=strict", "-f", "-", input=json.dumps(unknown), check=False)
    assert result.returncode != 0 and 'unknown field "spec.replicaz"' in result.stderr
    assert shoal.kubectl("get", "deploy", "bad", check=False).returncode != 0
    # --validate=warn: a warning, the object is stored without the unknown field
    warned = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "warned"}, "data": {"a": "1"},
              "bogus": 1}
    result = shoal.kubectl("create", "--validate=warn", "-f", "-", input=json.dumps(warned))
    assert 'Warning: unknown field "bogus"' in result.stderr
    stored = json.loads(shoal.kubectl("get", "cm", "warned", "-o", "json").stdout)
    assert "bogus" not in stored and stored["data"] == {"a": "1"}


def test_server_side_apply(shoal: ShoalProcess) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}}
    out = shoal.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(cm)).stdout
    assert "serverside-applied" in out
    got = json.loads(shoal.kubectl("get", "cm", "ssa", "-o", "json", "--show-managed-fields").stdout)
    assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in got["metadata"]["managedFields"])
    # another manager changes a field kubectl owns: a conflict unless forced
    shoal.kubectl("patch", "cm", "ssa", "--type=merge", "-p", '{"data":{"a":"2"}}')
    result = shoal.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(cm), check=False)
    assert result.returncode != 0 and "conflict" in result.stderr.lower()
    shoal.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(cm))
    got = json.loads(shoal.kubectl("get", "cm", "ssa", "-o", "json").stdout)
    assert got["data"] == {"a": "1"}


def test_unauthenticated_requests_are_refused(shoal: ShoalProcess) -> None:
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(shoal.ca_file))
    for path in ("/api/v1/namespaces/default/configmaps", "/apis", "/openapi/v3", "/metrics"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{shoal.url}{path}", context=context, timeout=5)
        with info.value as response:
            assert response.code == 401
            assert json.loads(response.read())["reason"] == "Unauthorized"
    request = urllib.request.Request(f"{shoal.url}/api/v1/namespaces",
                                     headers={"Authorization": "Bearer wrong"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, context=context, timeout=5)
    with info.value as response:
        assert response.code == 401
    for path in ("/livez", "/readyz", "/healthz", "/version"):
        with urllib.request.urlopen(f"{shoal.url}{path}", context=context, timeout=5) as resp:
            assert resp.status == 200
