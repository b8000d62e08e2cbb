"""Pod-template equality and the pod-template-hash (what makes ``rollout undo`` find its RS)."""

from __future__ import annotations

import copy

from shoal.controllers.deployment import template
from shoal.controllers.deployment.template import HASH_LABEL, SAFE_ALPHABET
from shoal.kube.objects import Obj

# A template as the API server stores it after defaulting.
STORED: Obj = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
                             "ports": [{"containerPort": 80, "protocol": "TCP"}],
                             "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                             "terminationMessagePolicy": "File"}],
             "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
             "securityContext": {}, "schedulerName": "default-scheduler"},
}


def undo_template(rs_template: Obj) -> Obj:
    """What ``kubectl rollout undo`` sends: the RS template minus the hash label, decorated."""
    sent = copy.deepcopy(rs_template)
    del sent["metadata"]["labels"][HASH_LABEL]
    sent["metadata"]["creationTimestamp"] = None
    sent["spec"]["containers"][0]["resources"] = {}
    return sent


def test_undo_decorations_do_not_make_templates_differ() -> None:
    rs_template = copy.deepcopy(STORED)
    rs_template["metadata"]["labels"][HASH_LABEL] = "abc12"
    assert template.equal_ignore_hash(undo_template(rs_template), rs_template)
    assert template.equal_ignore_hash(rs_template, STORED)


def test_real_changes_make_templates_differ() -> None:
    changed = copy.deepcopy(STORED)
    changed["spec"]["containers"][0]["image"] = "nginx:1.27"
    assert not template.equal_ignore_hash(changed, STORED)
    relabelled = copy.deepcopy(STORED)
    relabelled["metadata"]["labels"]["tier"] = "front"
    assert not template.equal_ignore_hash(relabelled, STORED)
    falsy = copy.deepcopy(STORED)
    falsy["spec"]["hostNetwork"] = False  # False and 0 are values, not "empty"
    assert not template.equal_ignore_hash(falsy, STORED)


def test_normalize_drops_empty_values_recursively() -> None:
    assert template.normalize({"a": None, "b": {}, "c": [], "d": {"e": {"f": None}}, "g": [{"h": {}}], "i": 0}) == \
        {"g": [{}], "i": 0}


def test_the_hash_is_stable_and_safe() -> None:
    first = template.compute_hash(STORED)
    assert first == template.compute_hash(copy.deepcopy(STORED))
    assert 1 <= len(first) <= 10 and set(first) <= set(SAFE_ALPHABET)
    decorated = undo_template({**copy.deepcopy(STORED), "metadata": {"labels": {"app": "web", HASH_LABEL: "x"}}})
    assert template.compute_hash(decorated) == first, "hash label and empty values do not count"
    changed = copy.deepcopy(STORED)
    changed["spec"]["containers"][0]["image"] = "nginx:1.27"
    assert template.compute_hash(changed) != first


def test_a_collision_count_changes_the_hash() -> None:
    hashes = {template.compute_hash(STORED, count) for count in (None, 0, 1, 2)}
    assert len(hashes) == 4


def test_fnv32a_and_safe_encoding_match_the_reference_definitions() -> None:
    assert template.fnv32a(b"") == 0x811C9DC5
    assert template.fnv32a(b"a") == 0xE40C292C
    assert template.fnv32a(b"foobar") == 0xBF9CF968
    # rand.SafeEncodeString maps each character by its code point modulo 27.
    assert template.safe_encode("0123456789") == "".join(SAFE_ALPHABET[ord(c) % 27] for c in "0123456789")
    assert template.safe_encode("123") == "567"
