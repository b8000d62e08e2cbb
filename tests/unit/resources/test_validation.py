"""Generic schema validation: types, formats and unknown fields against the committed schemas."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shoal.kube.errors import FieldError
from shoal.resources import schema
from shoal.resources.validation import (
    QUANTITY_MESSAGE,
    UnknownKindError,
    is_quantity,
    unknown_field_warnings,
    unknown_fields_message,
    validate_schema,
)

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "labels": {"app": "web"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
        "creationTimestamp": None,
        "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
                           "time": "2025-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:spec": {"f:replicas": {}}}}],
    },
    "spec": {
        "replicas": 3,
        "revisionHistoryLimit": 10,
        "selector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {
                "terminationGracePeriodSeconds": 30,
                "containers": [{
                    "name": "nginx",
                    "image": "nginx:1.25",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["nginx", "-g", "daemon off;"],
                    "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                    "env": [
                        {"name": "PLAIN", "value": "1"},
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                          "divisor": "1m"}}},
                    ],
                    "envFrom": [{"configMapRef": {"name": "cm"}}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                                  "requests": {"cpu": 0.25, "memory": "64Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                    "livenessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": 3},
                    "startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": 30},
                    "lifecycle": {"preStop": {"sleep": {"seconds": 2}}},
                    "volumeMounts": [{"name": "cache", "mountPath": "/cache", "readOnly": False}],
                    "securityContext": {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
                }],
                "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
                            {"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420}}],
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
    },
    "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True",
                                              "lastUpdateTime": "2025-01-01T00:00:00.123456Z",
                                              "lastTransitionTime": "2025-01-01T00:00:00+02:00"}]},
}

SERVICE: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "annotations": {"x": "y"}},
    "spec": {"type": "NodePort", "selector": {"app": "web"}, "sessionAffinity": "None",
             "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080,
                        "protocol": "TCP"},
                       {"name": "alt", "port": 8080, "targetPort": 8080}]},
}

POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "labels": {"app": "web"},
                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                      "uid": "u", "controller": True, "blockOwnerDeletion": True}]},
    "spec": {"restartPolicy": "Always", "nodeName": "n1",
             "containers": [{"name": "c", "image": "busybox", "args": ["sleep", "3600"],
                             "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}]},
    "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
               "startTime": "2025-01-01T00:00:00Z",
               "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0, "image": "busybox",
                                      "imageID": "", "started": True,
                                      "state": {"running": {"startedAt": "2025-01-01T00:00:01Z"}}}]},
}

SECRET: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "s"}, "data": {"user": "YWRtaW4="}, "stringData": {"pass": "x"}}
CONFIGMAP: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
             "data": {"a.conf": "x=1\n"}, "binaryData": {"b": "AAEC"}, "immutable": False}


@pytest.mark.parametrize("obj", [DEPLOYMENT, SERVICE, POD, SECRET, CONFIGMAP],
                         ids=["deployment", "service", "pod", "secret", "configmap"])
def test_full_manifests_pass(obj: dict[str, Any]) -> None:
    result = validate_schema(obj)
    assert result.errors == []
    assert result.unknown == []
    assert result.ok


def test_replicas_string_is_a_type_error_naming_the_field() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["replicas"] = "three"
    result = validate_schema(obj)
    assert result.errors == [FieldError(
        "spec.replicas", "FieldValueTypeInvalid",
        'spec.replicas in body must be of type integer: "string"', "three")]
    assert result.errors[0].message() == (
        'spec.replicas: Invalid value: "three": spec.replicas in body must be of type integer: "string"')


@pytest.mark.parametrize(("value", "actual"), [(True, "boolean"), (3.0, "number"), (2.5, "number"),
                                               ([1], "array"), ({"a": 1}, "object")])
def test_integer_is_strict(value: Any, actual: str) -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["replicas"] = value
    [error] = validate_schema(obj).errors
    assert error.type == "FieldValueTypeInvalid"
    assert error.detail == f'spec.replicas in body must be of type integer: "{actual}"'


def test_boolean_and_string_are_strict() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["paused"] = "true"
    obj["metadata"]["labels"]["version"] = 1
    errors = {e.path: e for e in validate_schema(obj).errors}
    assert errors["spec.paused"].detail == 'spec.paused in body must be of type boolean: "string"'
    assert errors["metadata.labels[version]"].detail.endswith('must be of type string: "integer"')


def test_unknown_fields_use_kubernetes_paths_in_document_order() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["foo"] = 1
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    obj["metadata"]["labelz"] = {}
    obj["extra"] = True
    result = validate_schema(obj)
    assert result.errors == []
    assert result.unknown == ["metadata.labelz", "spec.template.spec.containers[0].imagePullPolcy",
                              "spec.foo", "extra"]
    assert not result.ok


def test_unknown_field_messages() -> None:
    assert unknown_fields_message(["spec.foo", "spec.bar"]) == (
        'strict decoding error: unknown field "spec.foo", unknown field "spec.bar"')
    assert unknown_field_warnings(["spec.foo"]) == ['unknown field "spec.foo"']


@pytest.mark.parametrize("port", [8080, "http"])
def test_int_or_string_accepts_int_and_string(port: Any) -> None:
    obj = copy.deepcopy(SERVICE)
    obj["spec"]["ports"][0]["targetPort"] = port
    assert validate_schema(obj).ok


@pytest.mark.parametrize("port", [True, 1.5, {"x": 1}])
def test_int_or_string_rejects_other_types(port: Any) -> None:
    obj = copy.deepcopy(SERVICE)
    obj["spec"]["ports"][0]["targetPort"] = port
    [error] = validate_schema(obj).errors
    assert error.path == "spec.ports[0].targetPort"
    assert error.type == "FieldValueTypeInvalid"
    assert "integer,string" in error.detail


@pytest.mark.parametrize("quantity", ["100m", 1, "1Gi", 0.5, "1e3", " 2Ki ", "1234567n", "+.5", "-1"])
def test_valid_quantities(quantity: Any) -> None:
    obj = copy.deepcopy(POD)
    obj["spec"]["containers"][0]["resources"]["limits"]["cpu"] = quantity
    assert validate_schema(obj).errors == []


@pytest.mark.parametrize("quantity", ["lots", "", "1 Gi", "1GiB", "1.2.3"])
def test_invalid_quantity_strings(quantity: str) -> None:
    obj = copy.deepcopy(POD)
    obj["spec"]["containers"][0]["resources"]["limits"]["cpu"] = quantity
    [error] = validate_schema(obj).errors
    assert error == FieldError("spec.containers[0].resources.limits[cpu]", "FieldValueInvalid",
                               QUANTITY_MESSAGE, quantity)


def test_quantity_of_wrong_type_and_scalar_quantity() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    volumes = obj["spec"]["template"]["spec"]["volumes"]
    volumes[0]["emptyDir"]["sizeLimit"] = True
    [error] = validate_schema(obj).errors
    assert error.path == "spec.template.spec.volumes[0].emptyDir.sizeLimit"
    assert error.type == "FieldValueTypeInvalid"
    assert not is_quantity(False)


def test_date_time_format() -> None:
    obj = copy.deepcopy(POD)
    obj["status"]["startTime"] = "yesterday"
    obj["metadata"]["creationTimestamp"] = "2025-13-01T00:00:00Z"
    errors = {e.path: e for e in validate_schema(obj).errors}
    assert set(errors) == {"status.startTime", "metadata.creationTimestamp"}
    assert errors["status.startTime"].detail == (
        'status.startTime in body must be of type date-time: "yesterday"')
    assert errors["status.startTime"].type == "FieldValueInvalid"


def test_secret_data_must_be_base64() -> None:
    obj = copy.deepcopy(SECRET)
    obj["data"]["bad"] = "not base64!"
    obj["data"]["wrapped"] = "YWRt\naW4="
    [error] = validate_schema(obj).errors
    assert error.path == "data[bad]"
    assert "must be of type byte" in error.detail


def test_null_values_pass_and_free_form_objects_take_anything() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["strategy"] = None
    obj["metadata"]["managedFields"][0]["fieldsV1"] = {"f:anything": {"k:{\"x\":1}": {}}}
    assert validate_schema(obj).ok


def test_maps_and_arrays_check_their_type() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["metadata"]["labels"] = ["app=web"]
    obj["spec"]["template"]["spec"]["containers"] = {"name": "x"}
    errors = {e.path: e.detail for e in validate_schema(obj).errors}
    assert errors == {
        "metadata.labels": 'metadata.labels in body must be of type object: "array"',
        "spec.template.spec.containers":
            'spec.template.spec.containers in body must be of type array: "object"',
    }


def test_other_served_kinds_have_schemas() -> None:
    for api_version, kind in [("v1", "Namespace"), ("v1", "Endpoints"), ("v1", "Node"), ("v1", "Event"),
                              ("v1", "ServiceAccount"), ("apps/v1", "ReplicaSet"),
                              ("coordination.k8s.io/v1", "Lease"), ("discovery.k8s.io/v1", "EndpointSlice"),
                              ("autoscaling/v1", "Scale"), ("v1", "Status"), ("apps/v1", "DeleteOptions"),
                              ("v1", "PodList")]:
        assert schema.for_kind(api_version, kind) is not None, (api_version, kind)
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
             "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 10,
                      "renewTime": "2025-01-01T00:00:00.000001Z"}}
    assert validate_schema(lease).ok
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
             "spec": {"replicas": "4"}}
    assert [e.path for e in validate_schema(scale).errors] == ["spec.replicas"]


def test_unknown_kind_raises() -> None:
    with pytest.raises(UnknownKindError):
        validate_schema({"apiVersion": "example.com/v1", "kind": "Widget"})
    assert validate_schema({"metadata": {"name": "x"}}, api_version="v1", kind="ConfigMap").ok


def test_schema_helpers_resolve_references() -> None:
    spec = schema.for_kind("apps/v1", "Deployment")
    assert spec is not None
    replicas = schema.resolve(schema.resolve(spec["properties"]["spec"])["properties"]["replicas"])
    assert replicas["type"] == "integer"
    assert "io.k8s.api.core.v1.PodSpec" in schema.closure(["io.k8s.api.apps.v1.Deployment"])
    with pytest.raises(schema.SchemaError):
        schema.get("io.k8s.api.core.v1.Nope")
