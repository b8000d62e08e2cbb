"""PodSpec and PodTemplateSpec defaulting and validation, shared by Pod, ReplicaSet and Deployment.

Defaults (pkg/apis/core/v1/defaults.go ``SetDefaults_PodSpec`` and friends), all idempotent:
``restartPolicy: Always``, ``terminationGracePeriodSeconds: 30``, ``dnsPolicy: ClusterFirst``,
``schedulerName: default-scheduler``, ``securityContext: {}``, volumes without a source become
``emptyDir: {}``, configMap/secret/downwardAPI/projected volumes get ``defaultMode: 420``; each
container is defaulted by :func:`shoal.resources.kinds.container.default_container`.
Pod-only defaults (``enableServiceLinks``, requests from limits) live in ``pod.py`` because
Kubernetes applies them to Pods but not to templates.

Validation (``ValidatePodSpec``, ``ValidatePodTemplateSpec``,
``ValidatePodTemplateSpecForReplicaSet``) reports paths under the ``path`` it is given, so a
Deployment gets ``spec.template.spec.containers[0].image: Required value``.
"""

from __future__ import annotations

from typing import Any

from shoal.kube import selectors
from shoal.kube.errors import FieldError
from shoal.resources import naming
from shoal.resources.kinds import container, meta
from shoal.resources.kinds.meta import as_dict, as_list, invalid, is_int, required

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
DEFAULT_MODE = 0o644  # 420
MAX_INT32 = 2**31 - 1


def _default_volume(volume: dict[str, Any]) -> None:
    sources = [k for k, v in volume.items() if k != "name" and v is not None]
    if not sources:
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(volume.get(key), dict):
            container.set_if_unset(volume[key], "defaultMode", DEFAULT_MODE)
    if isinstance(volume.get("hostPath"), dict):
        container.set_if_unset(volume["hostPath"], "type", "")
    for source in as_list(as_dict(volume.get("projected")).get("sources")):
        token = as_dict(source).get("serviceAccountToken")
        if isinstance(token, dict):
            container.set_if_unset(token, "expirationSeconds", 3600)
    for item in as_list(as_dict(volume.get("downwardAPI")).get("items")):
        ref = as_dict(as_dict(item).get("fieldRef"))
        if ref:
            container.set_if_zero(ref, "apiVersion", "v1")


def default_pod_spec(spec: dict[str, Any]) -> None:
    """Fill a PodSpec's defaults in place (idempotent)."""
    container.set_if_zero(spec, "dnsPolicy", "ClusterFirst")
    container.set_if_zero(spec, "restartPolicy", "Always")
    container.set_if_unset(spec, "securityContext", {})
    container.set_if_unset(spec, "terminationGracePeriodSeconds", 30)
    container.set_if_zero(spec, "schedulerName", "default-scheduler")
    host_network = spec.get("hostNetwork") is True
    for key in ("initContainers", "containers"):
        for c in as_list(spec.get(key)):
            if isinstance(c, dict):
                container.default_container(c, host_network)
    for volume in as_list(spec.get("volumes")):
        if isinstance(volume, dict):
            _default_volume(volume)


def default_template(template: Any) -> None:
    """Default a PodTemplateSpec (``spec.template`` of a workload) in place."""
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        default_pod_spec(template["spec"])


# ---------------------------------------------------------------------------- validation


def _validate_volumes(volumes: list[Any], path: str) -> tuple[list[FieldError], set[str]]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, volume in enumerate(volumes):
        volume, vpath = as_dict(volume), f"{path}[{i}]"
        name = volume.get("name")
        if not name:
            errs.append(required(f"{vpath}.name"))
        elif isinstance(name, str):
            errs += meta.name_errors(f"{vpath}.name", name, naming.dns1123_label_errors)
            if name in names:
                errs.append(meta.duplicate(f"{vpath}.name", name))
            names.add(name)
        sources = [k for k, v in volume.items() if k != "name" and v is not None]
        if not sources:
            errs.append(required(vpath, "must specify a volume type"))
        errs += [meta.forbidden(f"{vpath}.{s}", "may not specify more than 1 volume type")
                 for s in sources[1:]]
        if "configMap" in sources and not as_dict(volume["configMap"]).get("name"):
            errs.append(required(f"{vpath}.configMap.name"))
        if "secret" in sources and not as_dict(volume["secret"]).get("secretName"):
            errs.append(required(f"{vpath}.secret.secretName"))
        if "hostPath" in sources and not as_dict(volume["hostPath"]).get("path"):
            errs.append(required(f"{vpath}.hostPath.path"))
        claim = as_dict(volume.get("persistentVolumeClaim"))
        if "persistentVolumeClaim" in sources and not claim.get("claimName"):
            errs.append(required(f"{vpath}.persistentVolumeClaim.claimName"))
    return errs, names


def validate_tolerations(tolerations: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, tol in enumerate(tolerations):
        tol, tpath = as_dict(tol), f"{path}[{i}]"
        key, op, effect = tol.get("key") or "", tol.get("operator") or "", tol.get("effect") or ""
        value = tol.get("value") or ""
        if key:
            errs += meta.name_errors(f"{tpath}.key", key, naming.qualified_name_errors)
        elif op != "Exists":
            errs.append(invalid(f"{tpath}.operator", op, "operator must be Exists when `key` is empty, "
                                "which means \"match all values and all keys\""))
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(f"{tpath}.effect", effect,
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("Equal", ""):
            errs += meta.name_errors(f"{tpath}.operator", value, naming.label_value_errors)
        elif op == "Exists":
            if value:
                errs.append(invalid(f"{tpath}.operator", meta.GoValue(repr(tol)),
                                    "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(meta.not_supported(f"{tpath}.operator", op, ("Equal", "Exists")))
        if effect and effect not in TAINT_EFFECTS:
            errs.append(meta.not_supported(f"{tpath}.effect", effect, TAINT_EFFECTS))
    return errs


def _validate_containers(spec: dict[str, Any], path: str, volumes: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    containers = as_list(spec.get("containers"))
    if not containers:
        errs.append(required(f"{path}.containers"))
    names: set[str] = set()
    host_ports: set[str] = set()
    for key, init in (("containers", False), ("initContainers", True)):
        for i, c in enumerate(as_list(spec.get(key))):
            c, cpath = as_dict(c), f"{path}.{key}[{i}]"
            errs += container.validate_container(c, cpath, volumes, init=init)
            name = c.get("name")
            if isinstance(name, str) and name:
                if name in names:
                    errs.append(meta.duplicate(f"{cpath}.name", name))
                names.add(name)
            for j, port in enumerate(as_list(c.get("ports"))):
                port = as_dict(port)
                if not port.get("hostPort"):
                    continue
                ident = f"{port.get('hostIP', '')}/{port.get('protocol', '')}/{port['hostPort']}"
                if ident in host_ports:
                    errs.append(meta.duplicate(f"{cpath}.ports[{j}].hostPort", ident))
                host_ports.add(ident)
    return errs


def validate_pod_spec(spec: Any, path: str) -> list[FieldError]:
    """``ValidatePodSpec`` for the PodSpec found at ``path`` (e.g. "spec.template.spec")."""
    spec = as_dict(spec)
    errs, volumes = _validate_volumes(as_list(spec.get("volumes")), f"{path}.volumes")
    errs += _validate_containers(spec, path, volumes)
    policy = spec.get("restartPolicy")
    errs += meta.supported(f"{path}.restartPolicy", policy, RESTART_POLICIES)
    errs += meta.supported(f"{path}.dnsPolicy", spec.get("dnsPolicy"), DNS_POLICIES)
    errs += meta.validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    for key, check in (("serviceAccountName", naming.dns1123_subdomain_errors),
                       ("nodeName", naming.dns1123_subdomain_errors),
                       ("schedulerName", naming.dns1123_subdomain_errors),
                       ("hostname", naming.dns1123_label_errors),
                       ("subdomain", naming.dns1123_label_errors)):
        value = spec.get(key)
        if isinstance(value, str) and value:
            errs += meta.name_errors(f"{path}.{key}", value, check)
    deadline = spec.get("activeDeadlineSeconds")
    if is_int(deadline) and not 1 <= deadline <= MAX_INT32:
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline,
                            f"must be between 1 and {MAX_INT32}, inclusive"))
    errs += validate_tolerations(as_list(spec.get("tolerations")), f"{path}.tolerations")
    return errs


def validate_template(template: Any, path: str) -> list[FieldError]:
    """``ValidatePodTemplateSpec``: template metadata labels/annotations and its spec."""
    template = as_dict(template)
    tmeta = as_dict(template.get("metadata"))
    errs = meta.validate_labels(tmeta.get("labels"), f"{path}.metadata.labels")
    errs += meta.validate_annotations(tmeta.get("annotations"), f"{path}.metadata.annotations")
    return errs + validate_pod_spec(template.get("spec"), f"{path}.spec")


def validate_replica_template(template: Any, selector: Any, path: str) -> list[FieldError]:
    """``ValidatePodTemplateSpecForReplicaSet``: labels match the selector, restartPolicy Always."""
    if not isinstance(template, dict) or not template:
        return [required(path)]
    labels = as_dict(template.get("metadata")).get("labels")
    errs: list[FieldError] = []
    # A nil selector selects nothing (labels.Nothing()), so it never matches the template; one
    # that does not convert is reported by the selector's own validation, not here.
    compiled = selectors.compile_spec(selector)
    if compiled is not None and not compiled.empty() and not compiled.matches(as_dict(labels)):
        errs.append(invalid(f"{path}.metadata.labels", meta.go_string_map(labels),
                            "`selector` does not match template `labels`"))
    errs += validate_template(template, path)
    spec = as_dict(template.get("spec"))
    policy = spec.get("restartPolicy")
    if policy != "Always":
        errs.append(meta.not_supported(f"{path}.spec.restartPolicy", policy or "", ("Always",)))
    if spec.get("activeDeadlineSeconds") is not None:
        errs.append(meta.forbidden(f"{path}.spec.activeDeadlineSeconds",
                                   "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return errs


def validate_replicated_spec(spec: Any, path: str = "spec") -> list[FieldError]:
    """The part of ``ValidateReplicaSetSpec``/``ValidateDeploymentSpec`` both kinds share:
    replicas, minReadySeconds, a non-empty valid selector and a matching template."""
    spec = as_dict(spec)
    errs = meta.non_negative(f"{path}.replicas", spec.get("replicas"))
    errs += meta.non_negative(f"{path}.minReadySeconds", spec.get("minReadySeconds"))
    selector = spec.get("selector")
    if selector is None:
        errs.append(required(f"{path}.selector"))
    else:
        errs += meta.validate_label_selector(selector, f"{path}.selector")
        if selectors.is_empty_spec(selector):
            errs.append(invalid(f"{path}.selector", meta.go_label_selector(selector),
                                "empty selector is invalid for deployment"))
    return errs + validate_replica_template(spec.get("template"), selector, f"{path}.template")
