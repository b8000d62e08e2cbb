"""Field tables for decoding Kubernetes protobuf request bodies (see :mod:`shoal.api.protobuf`).

Each message is a tuple of :class:`Field` in Go struct order (the order kubectl's own JSON uses),
with the field numbers of the upstream ``generated.proto`` files: k8s.io/api core/v1 and apps/v1,
apimachinery meta/v1, util/intstr (IntOrString) and api/resource (Quantity).

JSON presence mirrors what Go's ``encoding/json`` prints for the same object:

* Scalars are dropped when zero ("", 0, false) unless ``keep`` is set.  ``keep`` marks Go pointer
  fields (``*int32 replicas``: an explicit 0 is meaningful) and fields without ``omitempty``
  (``containerPort``, ``name`` of a container).  gogo-protobuf writes every non-pointer scalar, so
  "present on the wire" plus this flag reproduces Go's output exactly.
* Message fields are printed whenever present (Go never omits a struct; pointers are absent when nil).
* Repeated fields and maps are printed when non-empty.
* ``inline`` marks Go embedded structs (``LocalObjectReference``, ``ProbeHandler``,
  ``VolumeSource``): their keys are merged into the parent object.

Messages not listed (cloud volume plugins, ephemeral containers, ...) are reported as unknown
field numbers by the decoder.  Invariant: every ``message`` a field names is in :data:`MESSAGES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class T(Enum):
    """Value type of a field (for maps: of the value)."""

    STRING = "string"
    BYTES = "bytes"  # JSON: base64 string
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"
    MESSAGE = "message"
    TIME = "time"  # metav1.Time: RFC3339 seconds, null when the message is empty
    INT_OR_STRING = "intorstring"  # intstr.IntOrString: JSON int or string
    QUANTITY = "quantity"  # resource.Quantity: JSON string
    FIELDS_V1 = "fieldsv1"  # metav1.FieldsV1: embedded raw JSON


class Card(Enum):
    SINGLE = "single"
    REPEATED = "repeated"
    MAP = "map"  # map<string, type>: repeated entry messages {1: key, 2: value}


@dataclass(frozen=True, slots=True)
class Field:
    number: int
    name: str
    type: T
    card: Card = Card.SINGLE
    message: str | None = None
    keep: bool = False
    inline: bool = False


KEEP = True


def s(n: int, name: str, keep: bool = False) -> Field:
    return Field(n, name, T.STRING, keep=keep)


def i32(n: int, name: str, keep: bool = False) -> Field:
    return Field(n, name, T.INT32, keep=keep)


def i64(n: int, name: str, keep: bool = False) -> Field:
    return Field(n, name, T.INT64, keep=keep)


def b(n: int, name: str, keep: bool = False) -> Field:
    return Field(n, name, T.BOOL, keep=keep)


def m(n: int, name: str, message: str, inline: bool = False) -> Field:
    return Field(n, name, T.MESSAGE, message=message, inline=inline)


def rm(n: int, name: str, message: str) -> Field:
    return Field(n, name, T.MESSAGE, Card.REPEATED, message=message)


def rs(n: int, name: str) -> Field:
    return Field(n, name, T.STRING, Card.REPEATED)


def mp(n: int, name: str, value: T = T.STRING) -> Field:
    return Field(n, name, value, Card.MAP)


def t(n: int, name: str) -> Field:
    return Field(n, name, T.TIME)


def ios(n: int, name: str) -> Field:
    return Field(n, name, T.INT_OR_STRING)


def lor(n: int = 1) -> Field:
    """An embedded ``LocalObjectReference`` (JSON: a ``name`` key in the parent)."""
    return m(n, "localObjectReference", "LocalObjectReference", inline=True)


_META: dict[str, tuple[Field, ...]] = {
    "ObjectMeta": (s(1, "name"), s(2, "generateName"), s(3, "namespace"), s(4, "selfLink"), s(5, "uid"),
        s(6, "resourceVersion"), i64(7, "generation"), t(8, "creationTimestamp"),
        t(9, "deletionTimestamp"), i64(10, "deletionGracePeriodSeconds", KEEP), mp(11, "labels"),
        mp(12, "annotations"), rm(13, "ownerReferences", "OwnerReference"), rs(14, "finalizers"),
        rm(17, "managedFields", "ManagedFieldsEntry")),
    "OwnerReference": (s(5, "apiVersion", KEEP), s(1, "kind", KEEP), s(3, "name", KEEP),
        s(4, "uid", KEEP), b(6, "controller", KEEP), b(7, "blockOwnerDeletion", KEEP)),
    "ManagedFieldsEntry": (s(1, "manager"), s(2, "operation"), s(3, "apiVersion"), t(4, "time"),
        s(6, "fieldsType"), Field(7, "fieldsV1", T.FIELDS_V1), s(8, "subresource")),
    "LabelSelector": (mp(1, "matchLabels"), rm(2, "matchExpressions", "LabelSelectorRequirement")),
    "LabelSelectorRequirement": (s(1, "key", KEEP), s(2, "operator", KEEP), rs(3, "values")),
    "Condition": (s(1, "type", KEEP), s(2, "status", KEEP), i64(3, "observedGeneration"),
        t(4, "lastTransitionTime"), s(5, "reason", KEEP), s(6, "message", KEEP)),
    # Wrapped messages: decoded, then turned into a JSON scalar by the decoder.
    "Timestamp": (i64(1, "seconds", KEEP), i32(2, "nanos", KEEP)),
    "IntOrString": (i64(1, "type", KEEP), i32(2, "intVal", KEEP), s(3, "strVal", KEEP)),
    "Quantity": (s(1, "string", KEEP),),
}

_CORE_OBJECTS: dict[str, tuple[Field, ...]] = {
    "Secret": (m(1, "metadata", "ObjectMeta"), b(5, "immutable", KEEP), mp(2, "data", T.BYTES),
        mp(4, "stringData"), s(3, "type")),
    "ConfigMap": (m(1, "metadata", "ObjectMeta"), b(4, "immutable", KEEP), mp(2, "data"),
        mp(3, "binaryData", T.BYTES)),
    "Namespace": (m(1, "metadata", "ObjectMeta"), m(2, "spec", "NamespaceSpec"),
        m(3, "status", "NamespaceStatus")),
    "NamespaceSpec": (rs(1, "finalizers"),),
    "NamespaceStatus": (s(1, "phase"), rm(2, "conditions", "NamespaceCondition")),
    "NamespaceCondition": (s(1, "type", KEEP), s(2, "status", KEEP), t(4, "lastTransitionTime"),
        s(5, "reason"), s(6, "message")),
    "ServiceAccount": (m(1, "metadata", "ObjectMeta"), rm(2, "secrets", "ObjectReference"),
        rm(3, "imagePullSecrets", "LocalObjectReference"), b(4, "automountServiceAccountToken", KEEP)),
    "ObjectReference": (s(1, "kind"), s(2, "namespace"), s(3, "name"), s(4, "uid"), s(5, "apiVersion"),
        s(6, "resourceVersion"), s(7, "fieldPath")),
    "LocalObjectReference": (s(1, "name"),),
    "ResourceQuota": (m(1, "metadata", "ObjectMeta"), m(2, "spec", "ResourceQuotaSpec"),
        m(3, "status", "ResourceQuotaStatus")),
    "ResourceQuotaSpec": (mp(1, "hard", T.QUANTITY), rs(2, "scopes"),
        m(3, "scopeSelector", "ScopeSelector")),
    "ScopeSelector": (rm(1, "matchExpressions", "ScopedResourceSelectorRequirement"),),
    "ScopedResourceSelectorRequirement": (s(1, "scopeName", KEEP), s(2, "operator", KEEP), rs(3, "values")),
    "ResourceQuotaStatus": (mp(1, "hard", T.QUANTITY), mp(2, "used", T.QUANTITY)),
}

_SERVICE: dict[str, tuple[Field, ...]] = {
    "Service": (m(1, "metadata", "ObjectMeta"), m(2, "spec", "ServiceSpec"),
        m(3, "status", "ServiceStatus")),
    "ServiceSpec": (rm(1, "ports", "ServicePort"), mp(2, "selector"), s(3, "clusterIP"),
        rs(18, "clusterIPs"), s(4, "type"), rs(5, "externalIPs"), s(7, "sessionAffinity"),
        s(8, "loadBalancerIP"), rs(9, "loadBalancerSourceRanges"), s(10, "externalName"),
        s(11, "externalTrafficPolicy"), i32(12, "healthCheckNodePort"), b(13, "publishNotReadyAddresses"),
        m(14, "sessionAffinityConfig", "SessionAffinityConfig"), rs(19, "ipFamilies"),
        s(17, "ipFamilyPolicy", KEEP), b(20, "allocateLoadBalancerNodePorts", KEEP),
        s(21, "loadBalancerClass", KEEP), s(22, "internalTrafficPolicy", KEEP),
        s(23, "trafficDistribution", KEEP)),
    "ServicePort": (s(1, "name"), s(2, "protocol"), s(6, "appProtocol", KEEP), i32(3, "port", KEEP),
        ios(4, "targetPort"), i32(5, "nodePort")),
    "SessionAffinityConfig": (m(1, "clientIP", "ClientIPConfig"),),
    "ClientIPConfig": (i32(1, "timeoutSeconds", KEEP),),
    "ServiceStatus": (m(1, "loadBalancer", "LoadBalancerStatus"), rm(2, "conditions", "Condition")),
    "LoadBalancerStatus": (rm(1, "ingress", "LoadBalancerIngress"),),
    "LoadBalancerIngress": (s(1, "ip"), s(2, "hostname"), s(3, "ipMode", KEEP),
        rm(4, "ports", "PortStatus")),
    "PortStatus": (i32(1, "port", KEEP), s(2, "protocol", KEEP), s(3, "error", KEEP)),
}

_POD: dict[str, tuple[Field, ...]] = {
    "Pod": (m(1, "metadata", "ObjectMeta"), m(2, "spec", "PodSpec"), m(3, "status", "PodStatus")),
    "PodTemplateSpec": (m(1, "metadata", "ObjectMeta"), m(2, "spec", "PodSpec")),
    "PodSpec": (rm(1, "volumes", "Volume"), rm(20, "initContainers", "Container"),
        rm(2, "containers", "Container"), s(3, "restartPolicy"),
        i64(4, "terminationGracePeriodSeconds", KEEP), i64(5, "activeDeadlineSeconds", KEEP),
        s(6, "dnsPolicy"), mp(7, "nodeSelector"), s(8, "serviceAccountName"), s(9, "serviceAccount"),
        b(21, "automountServiceAccountToken", KEEP), s(10, "nodeName"), b(11, "hostNetwork"),
        b(12, "hostPID"), b(13, "hostIPC"), b(27, "shareProcessNamespace", KEEP),
        m(14, "securityContext", "PodSecurityContext"),
        rm(15, "imagePullSecrets", "LocalObjectReference"), s(16, "hostname"), s(17, "subdomain"),
        m(18, "affinity", "Affinity"), s(19, "schedulerName"), rm(22, "tolerations", "Toleration"),
        rm(23, "hostAliases", "HostAlias"), s(24, "priorityClassName"), i32(25, "priority", KEEP),
        m(26, "dnsConfig", "PodDNSConfig"), rm(28, "readinessGates", "PodReadinessGate"),
        s(29, "runtimeClassName", KEEP), b(30, "enableServiceLinks", KEEP),
        s(31, "preemptionPolicy", KEEP), mp(32, "overhead", T.QUANTITY),
        rm(33, "topologySpreadConstraints", "TopologySpreadConstraint"), b(35, "setHostnameAsFQDN", KEEP),
        m(36, "os", "PodOS"), b(37, "hostUsers", KEEP), rm(38, "schedulingGates", "PodSchedulingGate"),
        rm(39, "resourceClaims", "PodResourceClaim"), m(40, "resources", "ResourceRequirements"),
        s(41, "hostnameOverride", KEEP)),
    "Container": (s(1, "name", KEEP), s(2, "image"), rs(3, "command"), rs(4, "args"), s(5, "workingDir"),
        rm(6, "ports", "ContainerPort"), rm(19, "envFrom", "EnvFromSource"), rm(7, "env", "EnvVar"),
        m(8, "resources", "ResourceRequirements"), rm(23, "resizePolicy", "ContainerResizePolicy"),
        s(24, "restartPolicy", KEEP), rm(9, "volumeMounts", "VolumeMount"),
        rm(21, "volumeDevices", "VolumeDevice"), m(10, "livenessProbe", "Probe"),
        m(11, "readinessProbe", "Probe"), m(22, "startupProbe", "Probe"), m(12, "lifecycle", "Lifecycle"),
        s(13, "terminationMessagePath"), s(20, "terminationMessagePolicy"), s(14, "imagePullPolicy"),
        m(15, "securityContext", "SecurityContext"), b(16, "stdin"), b(17, "stdinOnce"), b(18, "tty")),
    "ContainerPort": (s(1, "name"), i32(2, "hostPort"), i32(3, "containerPort", KEEP), s(4, "protocol"),
        s(5, "hostIP")),
    "EnvFromSource": (s(1, "prefix"), m(2, "configMapRef", "ConfigMapEnvSource"),
        m(3, "secretRef", "SecretEnvSource")),
    "ConfigMapEnvSource": (lor(), b(2, "optional", KEEP)),
    "SecretEnvSource": (lor(), b(2, "optional", KEEP)),
    "EnvVar": (s(1, "name", KEEP), s(2, "value"), m(3, "valueFrom", "EnvVarSource")),
    "EnvVarSource": (m(1, "fieldRef", "ObjectFieldSelector"),
        m(2, "resourceFieldRef", "ResourceFieldSelector"),
        m(3, "configMapKeyRef", "ConfigMapKeySelector"), m(4, "secretKeyRef", "SecretKeySelector"),
        m(5, "fileKeyRef", "FileKeySelector")),
    "ObjectFieldSelector": (s(1, "apiVersion"), s(2, "fieldPath", KEEP)),
    "ResourceFieldSelector": (s(1, "containerName"), s(2, "resource", KEEP), Field(3, "divisor", T.QUANTITY)),
    "ConfigMapKeySelector": (lor(), s(2, "key", KEEP), b(3, "optional", KEEP)),
    "SecretKeySelector": (lor(), s(2, "key", KEEP), b(3, "optional", KEEP)),
    "FileKeySelector": (s(1, "volumeName", KEEP), s(2, "path", KEEP), s(3, "key", KEEP),
        b(4, "optional", KEEP)),
    "ResourceRequirements": (mp(1, "limits", T.QUANTITY), mp(2, "requests", T.QUANTITY),
        rm(3, "claims", "ResourceClaim")),
    "ResourceClaim": (s(1, "name", KEEP), s(2, "request")),
    "ContainerResizePolicy": (s(1, "resourceName", KEEP), s(2, "restartPolicy", KEEP)),
    "VolumeMount": (s(1, "name", KEEP), b(2, "readOnly"), s(7, "recursiveReadOnly", KEEP),
        s(3, "mountPath", KEEP), s(4, "subPath"), s(5, "mountPropagation", KEEP), s(6, "subPathExpr")),
    "VolumeDevice": (s(1, "name", KEEP), s(2, "devicePath", KEEP)),
    "Probe": (m(1, "handler", "ProbeHandler", inline=True), i32(2, "initialDelaySeconds"),
        i32(3, "timeoutSeconds"), i32(4, "periodSeconds"), i32(5, "successThreshold"),
        i32(6, "failureThreshold"), i64(7, "terminationGracePeriodSeconds", KEEP)),
    "ProbeHandler": (m(1, "exec", "ExecAction"), m(2, "httpGet", "HTTPGetAction"),
        m(3, "tcpSocket", "TCPSocketAction"), m(4, "grpc", "GRPCAction")),
    "ExecAction": (rs(1, "command"),),
    "HTTPGetAction": (s(1, "path"), ios(2, "port"), s(3, "host"), s(4, "scheme"),
        rm(5, "httpHeaders", "HTTPHeader")),
    "HTTPHeader": (s(1, "name", KEEP), s(2, "value", KEEP)),
    "TCPSocketAction": (ios(1, "port"), s(2, "host")),
    "GRPCAction": (i32(1, "port", KEEP), s(2, "service", KEEP)),
    "Lifecycle": (m(1, "postStart", "LifecycleHandler"), m(2, "preStop", "LifecycleHandler"),
        s(3, "stopSignal", KEEP)),
    "LifecycleHandler": (m(1, "exec", "ExecAction"), m(2, "httpGet", "HTTPGetAction"),
        m(3, "tcpSocket", "TCPSocketAction"), m(4, "sleep", "SleepAction")),
    "SleepAction": (i64(1, "seconds", KEEP),),
}

_POD_SECURITY_AND_SCHEDULING: dict[str, tuple[Field, ...]] = {
    "SecurityContext": (m(1, "capabilities", "Capabilities"), b(2, "privileged", KEEP),
        m(3, "seLinuxOptions", "SELinuxOptions"),
        m(10, "windowsOptions", "WindowsSecurityContextOptions"), i64(4, "runAsUser", KEEP),
        i64(8, "runAsGroup", KEEP), b(5, "runAsNonRoot", KEEP), b(6, "readOnlyRootFilesystem", KEEP),
        b(7, "allowPrivilegeEscalation", KEEP), s(9, "procMount", KEEP),
        m(11, "seccompProfile", "SeccompProfile"), m(12, "appArmorProfile", "AppArmorProfile")),
    "Capabilities": (rs(1, "add"), rs(2, "drop")),
    "SELinuxOptions": (s(1, "user"), s(2, "role"), s(3, "type"), s(4, "level")),
    "WindowsSecurityContextOptions": (s(1, "gmsaCredentialSpecName", KEEP),
        s(2, "gmsaCredentialSpec", KEEP), s(3, "runAsUserName", KEEP), b(4, "hostProcess", KEEP)),
    "SeccompProfile": (s(1, "type", KEEP), s(2, "localhostProfile", KEEP)),
    "AppArmorProfile": (s(1, "type", KEEP), s(2, "localhostProfile", KEEP)),
    "PodSecurityContext": (m(1, "seLinuxOptions", "SELinuxOptions"),
        m(8, "windowsOptions", "WindowsSecurityContextOptions"), i64(2, "runAsUser", KEEP),
        i64(6, "runAsGroup", KEEP), b(3, "runAsNonRoot", KEEP),
        Field(4, "supplementalGroups", T.INT64, Card.REPEATED),
        s(12, "supplementalGroupsPolicy", KEEP), i64(5, "fsGroup", KEEP), rm(7, "sysctls", "Sysctl"),
        s(9, "fsGroupChangePolicy", KEEP), m(10, "seccompProfile", "SeccompProfile"),
        m(11, "appArmorProfile", "AppArmorProfile"), s(13, "seLinuxChangePolicy", KEEP)),
    "Sysctl": (s(1, "name", KEEP), s(2, "value", KEEP)),
    "Affinity": (m(1, "nodeAffinity", "NodeAffinity"), m(2, "podAffinity", "PodAffinity"),
        m(3, "podAntiAffinity", "PodAffinity")),
    "NodeAffinity": (m(1, "requiredDuringSchedulingIgnoredDuringExecution", "NodeSelector"),
        rm(2, "preferredDuringSchedulingIgnoredDuringExecution", "PreferredSchedulingTerm")),
    "NodeSelector": (rm(1, "nodeSelectorTerms", "NodeSelectorTerm"),),
    "NodeSelectorTerm": (rm(1, "matchExpressions", "NodeSelectorRequirement"),
        rm(2, "matchFields", "NodeSelectorRequirement")),
    "NodeSelectorRequirement": (s(1, "key", KEEP), s(2, "operator", KEEP), rs(3, "values")),
    "PreferredSchedulingTerm": (i32(1, "weight", KEEP), m(2, "preference", "NodeSelectorTerm")),
    # PodAntiAffinity has the same shape and numbers as PodAffinity.
    "PodAffinity": (rm(1, "requiredDuringSchedulingIgnoredDuringExecution", "PodAffinityTerm"),
        rm(2, "preferredDuringSchedulingIgnoredDuringExecution", "WeightedPodAffinityTerm")),
    "PodAffinityTerm": (m(1, "labelSelector", "LabelSelector"), rs(2, "namespaces"),
        s(3, "topologyKey", KEEP), m(4, "namespaceSelector", "LabelSelector"), rs(5, "matchLabelKeys"),
        rs(6, "mismatchLabelKeys")),
    "WeightedPodAffinityTerm": (i32(1, "weight", KEEP), m(2, "podAffinityTerm", "PodAffinityTerm")),
    "Toleration": (s(1, "key"), s(2, "operator"), s(3, "value"), s(4, "effect"),
        i64(5, "tolerationSeconds", KEEP)),
    "HostAlias": (s(1, "ip", KEEP), rs(2, "hostnames")),
    "PodDNSConfig": (rs(1, "nameservers"), rs(2, "searches"), rm(3, "options", "PodDNSConfigOption")),
    "PodDNSConfigOption": (s(1, "name"), s(2, "value", KEEP)),
    "PodReadinessGate": (s(1, "conditionType", KEEP),),
    "TopologySpreadConstraint": (i32(1, "maxSkew", KEEP), s(2, "topologyKey", KEEP),
        s(3, "whenUnsatisfiable", KEEP), m(4, "labelSelector", "LabelSelector"),
        i32(5, "minDomains", KEEP), s(6, "nodeAffinityPolicy", KEEP), s(7, "nodeTaintsPolicy", KEEP),
        rs(8, "matchLabelKeys")),
    "PodOS": (s(1, "name", KEEP),),
    "PodSchedulingGate": (s(1, "name", KEEP),),
    "PodResourceClaim": (s(1, "name", KEEP), s(3, "resourceClaimName", KEEP),
        s(4, "resourceClaimTemplateName", KEEP)),
}

_VOLUMES: dict[str, tuple[Field, ...]] = {
    "Volume": (s(1, "name", KEEP), m(2, "volumeSource", "VolumeSource", inline=True)),
    "VolumeSource": (m(1, "hostPath", "HostPathVolumeSource"), m(2, "emptyDir", "EmptyDirVolumeSource"),
        m(6, "secret", "SecretVolumeSource"), m(7, "nfs", "NFSVolumeSource"),
        m(10, "persistentVolumeClaim", "PersistentVolumeClaimVolumeSource"),
        m(16, "downwardAPI", "DownwardAPIVolumeSource"), m(19, "configMap", "ConfigMapVolumeSource"),
        m(26, "projected", "ProjectedVolumeSource"), m(28, "csi", "CSIVolumeSource"),
        m(30, "image", "ImageVolumeSource")),
    "HostPathVolumeSource": (s(1, "path", KEEP), s(2, "type", KEEP)),
    "EmptyDirVolumeSource": (s(1, "medium"), Field(2, "sizeLimit", T.QUANTITY)),
    "SecretVolumeSource": (s(1, "secretName"), rm(2, "items", "KeyToPath"), i32(3, "defaultMode", KEEP),
        b(4, "optional", KEEP)),
    "KeyToPath": (s(1, "key", KEEP), s(2, "path", KEEP), i32(3, "mode", KEEP)),
    "NFSVolumeSource": (s(1, "server", KEEP), s(2, "path", KEEP), b(3, "readOnly")),
    "PersistentVolumeClaimVolumeSource": (s(1, "claimName", KEEP), b(2, "readOnly")),
    "DownwardAPIVolumeSource": (rm(1, "items", "DownwardAPIVolumeFile"), i32(2, "defaultMode", KEEP)),
    "DownwardAPIVolumeFile": (s(1, "path", KEEP), m(2, "fieldRef", "ObjectFieldSelector"),
        m(3, "resourceFieldRef", "ResourceFieldSelector"), i32(4, "mode", KEEP)),
    "ConfigMapVolumeSource": (lor(), rm(2, "items", "KeyToPath"), i32(3, "defaultMode", KEEP),
        b(4, "optional", KEEP)),
    "ProjectedVolumeSource": (rm(1, "sources", "VolumeProjection"), i32(2, "defaultMode", KEEP)),
    "VolumeProjection": (m(1, "secret", "SecretProjection"), m(2, "downwardAPI", "DownwardAPIProjection"),
        m(3, "configMap", "ConfigMapProjection"),
        m(4, "serviceAccountToken", "ServiceAccountTokenProjection")),
    "SecretProjection": (lor(), rm(2, "items", "KeyToPath"), b(4, "optional", KEEP)),
    "ConfigMapProjection": (lor(), rm(2, "items", "KeyToPath"), b(4, "optional", KEEP)),
    "DownwardAPIProjection": (rm(1, "items", "DownwardAPIVolumeFile"),),
    "ServiceAccountTokenProjection": (s(1, "audience"), i64(2, "expirationSeconds", KEEP),
        s(3, "path", KEEP)),
    "CSIVolumeSource": (s(1, "driver", KEEP), b(2, "readOnly", KEEP), s(3, "fsType", KEEP),
        mp(4, "volumeAttributes"), m(5, "nodePublishSecretRef", "LocalObjectReference")),
    "ImageVolumeSource": (s(1, "reference"), s(2, "pullPolicy")),
}

_POD_STATUS: dict[str, tuple[Field, ...]] = {
    "PodStatus": (i64(17, "observedGeneration"), s(1, "phase"), rm(2, "conditions", "PodCondition"),
        s(3, "message"), s(4, "reason"), s(11, "nominatedNodeName"), s(5, "hostIP"),
        rm(16, "hostIPs", "HostIP"), s(6, "podIP"), rm(12, "podIPs", "PodIP"), t(7, "startTime"),
        rm(10, "initContainerStatuses", "ContainerStatus"), rm(8, "containerStatuses", "ContainerStatus"),
        s(9, "qosClass"), rm(13, "ephemeralContainerStatuses", "ContainerStatus"), s(14, "resize"),
        rm(15, "resourceClaimStatuses", "PodResourceClaimStatus")),
    "PodCondition": (s(1, "type", KEEP), i64(7, "observedGeneration"), s(2, "status", KEEP),
        t(3, "lastProbeTime"), t(4, "lastTransitionTime"), s(5, "reason"), s(6, "message")),
    "HostIP": (s(1, "ip", KEEP),),
    "PodIP": (s(1, "ip", KEEP),),
    "PodResourceClaimStatus": (s(1, "name", KEEP), s(2, "resourceClaimName", KEEP)),
    "ContainerStatus": (s(1, "name", KEEP), m(2, "state", "ContainerState"),
        m(3, "lastState", "ContainerState"), b(4, "ready", KEEP), i32(5, "restartCount", KEEP),
        s(6, "image", KEEP), s(7, "imageID", KEEP), s(8, "containerID"), b(9, "started", KEEP),
        mp(10, "allocatedResources", T.QUANTITY), m(11, "resources", "ResourceRequirements"),
        rm(12, "volumeMounts", "VolumeMountStatus"), m(13, "user", "ContainerUser"),
        s(15, "stopSignal", KEEP)),
    "ContainerState": (m(1, "waiting", "ContainerStateWaiting"), m(2, "running", "ContainerStateRunning"),
        m(3, "terminated", "ContainerStateTerminated")),
    "ContainerStateWaiting": (s(1, "reason"), s(2, "message")),
    "ContainerStateRunning": (t(1, "startedAt"),),
    "ContainerStateTerminated": (i32(1, "exitCode", KEEP), i32(2, "signal"), s(3, "reason"),
        s(4, "message"), t(5, "startedAt"), t(6, "finishedAt"), s(7, "containerID")),
    "VolumeMountStatus": (s(1, "name", KEEP), s(2, "mountPath", KEEP), b(3, "readOnly"),
        s(4, "recursiveReadOnly", KEEP)),
    "ContainerUser": (m(1, "linux", "LinuxContainerUser"),),
    "LinuxContainerUser": (i64(1, "uid", KEEP), i64(2, "gid", KEEP),
        Field(3, "supplementalGroups", T.INT64, Card.REPEATED)),
}

_APPS: dict[str, tuple[Field, ...]] = {
    "Deployment": (m(1, "metadata", "ObjectMeta"), m(2, "spec", "DeploymentSpec"),
        m(3, "status", "DeploymentStatus")),
    "DeploymentSpec": (i32(1, "replicas", KEEP), m(2, "selector", "LabelSelector"),
        m(3, "template", "PodTemplateSpec"), m(4, "strategy", "DeploymentStrategy"),
        i32(5, "minReadySeconds"), i32(6, "revisionHistoryLimit", KEEP), b(7, "paused"),
        i32(9, "progressDeadlineSeconds", KEEP), s(10, "podReplacementPolicy", KEEP)),
    "DeploymentStrategy": (s(1, "type"), m(2, "rollingUpdate", "RollingUpdateDeployment")),
    "RollingUpdateDeployment": (ios(1, "maxUnavailable"), ios(2, "maxSurge")),
    "DeploymentStatus": (i64(1, "observedGeneration"), i32(2, "replicas"), i32(3, "updatedReplicas"),
        i32(7, "readyReplicas"), i32(4, "availableReplicas"), i32(5, "unavailableReplicas"),
        i32(9, "terminatingReplicas", KEEP), rm(6, "conditions", "DeploymentCondition"),
        i32(8, "collisionCount", KEEP)),
    "DeploymentCondition": (s(1, "type", KEEP), s(2, "status", KEEP), t(6, "lastUpdateTime"),
        t(7, "lastTransitionTime"), s(4, "reason"), s(5, "message")),
    "ReplicaSet": (m(1, "metadata", "ObjectMeta"), m(2, "spec", "ReplicaSetSpec"),
        m(3, "status", "ReplicaSetStatus")),
    "ReplicaSetSpec": (i32(1, "replicas", KEEP), i32(4, "minReadySeconds"),
        m(2, "selector", "LabelSelector"), m(3, "template", "PodTemplateSpec")),
    "ReplicaSetStatus": (i32(1, "replicas", KEEP), i32(2, "fullyLabeledReplicas"),
        i32(4, "readyReplicas"), i32(5, "availableReplicas"), i32(7, "terminatingReplicas", KEEP),
        i64(3, "observedGeneration"), rm(6, "conditions", "ReplicaSetCondition")),
    "ReplicaSetCondition": (s(1, "type", KEEP), s(2, "status", KEEP), t(3, "lastTransitionTime"),
        s(4, "reason"), s(5, "message")),
}

MESSAGES: dict[str, tuple[Field, ...]] = {
    **_META, **_CORE_OBJECTS, **_SERVICE, **_POD, **_POD_SECURITY_AND_SCHEDULING, **_VOLUMES,
    **_POD_STATUS, **_APPS,
}

#: Top-level kinds the decoder accepts: (apiVersion, kind) -> message name.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Secret"): "Secret",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("v1", "Pod"): "Pod",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("apps/v1", "Deployment"): "Deployment",
    ("apps/v1", "ReplicaSet"): "ReplicaSet",
}

#: Field lookup by number, per message (built once).
BY_NUMBER: dict[str, dict[int, Field]] = {
    name: {f.number: f for f in fields} for name, fields in MESSAGES.items()
}
