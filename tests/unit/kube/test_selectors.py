"""shoal.kube.selectors and shoal.kube.fieldselectors: Kubernetes label and field selector syntax and semantics."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.kube import selectors
from shoal.kube.errors import ApiError
from shoal.kube.fieldselectors import FieldRequirement, parse_field_selector
from shoal.kube.selectors import (
    LabelSelector,
    Op,
    Requirement,
    format_label_selector,
    label_selector_from_spec,
    parse_label_selector,
    selector_from_set,
    selector_to_string,
)


def bad(fn: Any, arg: Any) -> str:
    with pytest.raises(ApiError) as info:
        fn(arg)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"
    return info.value.message


# --- label selector strings ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "printed"), [
    ("", ""),
    ("a=b", "a=b"),
    ("a==b", "a==b"),
    ("a!=b", "a!=b"),
    ("a", "a"),
    ("!a", "!a"),
    ("a in (y,x)", "a in (x,y)"),
    ("a notin (x)", "a notin (x)"),
    ("a in (x,x,y)", "a in (x,y)"),
    ("a>1", "a>1"),
    ("a<-3", "a<-3"),
    ("b=1,a=2", "a=2,b=1"),
    ("  tier = fe ,  app in ( web , api )  ", "app in (api,web),tier=fe"),
    ("a=", "a="),
    ("a in (x,)", "a in (,x)"),
    ("a in (,x)", "a in (,x)"),
    ("a in (x,,y)", "a in (,x,y)"),
    ("in=notin", "in=notin"),
    ("a in (in,notin)", "a in (in,notin)"),
    ("example.com/app=web", "example.com/app=web"),
    ("app.kubernetes.io/name=My_App-1.0", "app.kubernetes.io/name=My_App-1.0"),
    ("! a", "!a"),
])
def test_parse_and_print(text: str, printed: str) -> None:
    assert str(parse_label_selector(text)) == printed


def test_parsed_structure() -> None:
    selector = parse_label_selector("env notin (prod),app=web,!legacy,gpu")
    assert selector.requirements == (
        Requirement("app", Op.EQUALS, ("web",)),
        Requirement("env", Op.NOT_IN, ("prod",)),
        Requirement("gpu", Op.EXISTS),
        Requirement("legacy", Op.DOES_NOT_EXIST),
    )


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ("", {}, True),
    ("", {"a": "b"}, True),
    ("a=b", {"a": "b"}, True),
    ("a=b", {"a": "c"}, False),
    ("a=b", {}, False),
    ("a==b", {"a": "b", "x": "y"}, True),
    ("a!=b", {"a": "c"}, True),
    ("a!=b", {"a": "b"}, False),
    ("a!=b", {}, True),
    ("a=", {"a": ""}, True),
    ("a=", {}, False),
    ("a in (x,y)", {"a": "y"}, True),
    ("a in (x,y)", {"a": "z"}, False),
    ("a in (x,y)", {}, False),
    ("a notin (x,y)", {"a": "z"}, True),
    ("a notin (x,y)", {"a": "x"}, False),
    ("a notin (x,y)", {}, True),
    ("a", {"a": ""}, True),
    ("a", {"b": "a"}, False),
    ("!a", {"b": "1"}, True),
    ("!a", {"a": "1"}, False),
    ("a>5", {"a": "6"}, True),
    ("a>5", {"a": "5"}, False),
    ("a>5", {"a": "x"}, False),
    ("a>5", {}, False),
    ("a<5", {"a": "-7"}, True),
    ("a<5", {"a": "99999999999999999999"}, False),
    ("app=web,tier!=db", {"app": "web", "tier": "fe"}, True),
    ("app=web,tier!=db", {"app": "web", "tier": "db"}, False),
    ("app=web,tier!=db", {"tier": "fe"}, False),
])
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_matches_none_labels() -> None:
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)


@pytest.mark.parametrize(("text", "message"), [
    ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in x", "unable to parse requirement: found 'x', expected: '('"),
    ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
    ("a in (=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=(b", "unable to parse requirement: found '(', expected: identifier"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
    ("(a)", "found '(', expected: !, identifier, or 'end of string'"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a=b=c", "found '=', expected: ',' or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a,,b", "found ',', expected: identifier after ','"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("a in ()", "unable to parse requirement: values: Invalid value: for 'in', 'notin' operators, "
                "values set can't be empty"),
    ("a>b", "unable to parse requirement: values[0]: Invalid value: for 'Gt', 'Lt' operators, "
            "the value must be an integer"),
    ("a<", "unable to parse requirement: values[0]: Invalid value: for 'Gt', 'Lt' operators, "
           "the value must be an integer"),
])
def test_syntax_errors(text: str, message: str) -> None:
    assert bad(parse_label_selector, text) == message


@pytest.mark.parametrize(("text", "problem"), [
    ("a@b=c", 'key: Invalid value: "a@b": name part must consist of alphanumeric characters'),
    ("-a=c", 'key: Invalid value: "-a": name part must consist'),
    ("x/y/z=1", "one '/'"),
    ("/a=1", "prefix part must be non-empty"),
    ("a/=1", "name part must be non-empty"),
    ("Example.com/a=1", "prefix part must be a lowercase RFC 1123 subdomain"),
    ("k" * 64 + "=1", "name part must be no more than 63 characters"),
    ("a=" + "v" * 64, 'values[0]: Invalid value: "' + "v" * 64 + '": must be no more than 63'),
    ("a=b@c", 'values[0]: Invalid value: "b@c": a valid label must be an empty string'),
    ("a in (ok,-bad)", 'values[0]: Invalid value: "-bad"'),
])
def test_invalid_keys_and_values(text: str, problem: str) -> None:
    message = bad(parse_label_selector, text)
    assert message.startswith("unable to parse requirement: ")
    assert problem in message


def test_key_is_checked_before_the_operator() -> None:
    assert "key: Invalid value" in bad(parse_label_selector, "a@b in (x")


def test_requirement_new_validation() -> None:
    with pytest.raises(ValueError, match="exactly one value"):
        Requirement.new("a", Op.GT, ["1", "2"])
    with pytest.raises(ValueError, match="one single value"):
        Requirement.new("a", Op.EQUALS, ["x", "y"])
    with pytest.raises(ValueError, match="must be empty for exists"):
        Requirement.new("a", Op.EXISTS, ["x"])
    assert Requirement.new("a", Op.LT, ["-9223372036854775808"]).values == ("-9223372036854775808",)
    with pytest.raises(ValueError, match="must be an integer"):
        Requirement.new("a", Op.LT, ["9223372036854775808"])


# --- metav1.LabelSelector objects ----------------------------------------------------------------

def test_spec_match_labels_prints_like_kubernetes() -> None:
    assert selector_to_string({"matchLabels": {"app": "web"}}) == "app=web"
    assert selector_to_string({"matchLabels": {"tier": "fe", "app": "web"}}) == "app=web,tier=fe"


def test_spec_with_expressions() -> None:
    spec = {
        "matchLabels": {"tier": "fe", "app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "NotIn", "values": ["prod", "dev"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist", "values": []},
            {"key": "zone", "operator": "In", "values": ["b", "a"]},
        ],
    }
    selector = label_selector_from_spec(spec)
    assert str(selector) == "app=web,env notin (dev,prod),gpu,!legacy,tier=fe,zone in (a,b)"
    assert selector.matches({"app": "web", "tier": "fe", "gpu": "1", "zone": "a"})
    assert not selector.matches({"app": "web", "tier": "fe", "gpu": "1", "zone": "a", "env": "prod"})
    assert not selector.matches({"app": "web", "tier": "fe", "zone": "a"})
    assert not selector.matches({"app": "web", "tier": "fe", "gpu": "1", "zone": "c"})


def test_null_and_empty_spec() -> None:
    nothing = label_selector_from_spec(None)
    assert nothing.nothing and not nothing.empty()
    assert not nothing.matches({}) and not nothing.matches({"a": "b"})
    everything = label_selector_from_spec({})
    assert everything.empty()
    assert everything.matches({}) and everything.matches({"a": "b"})
    assert label_selector_from_spec({"matchLabels": None, "matchExpressions": None}).empty()
    assert selector_to_string(None) == selector_to_string({}) == ""


@pytest.mark.parametrize(("spec", "problem"), [
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
     '"Equals" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     "values set must be empty for exists"),
    ({"matchLabels": {"a b": "x"}}, 'key: Invalid value: "a b"'),
    ({"matchLabels": {"a": "x y"}}, 'values[0]: Invalid value: "x y"'),
    ({"matchLabels": {"a": 1}}, 'matchLabels["a"] must be a string'),
    ({"matchLabels": ["a"]}, "matchLabels must be an object"),
    ({"matchExpressions": ["a"]}, "each matchExpressions entry must be an object"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}, "list of string values"),
])
def test_invalid_spec(spec: dict[str, Any], problem: str) -> None:
    message = bad(label_selector_from_spec, spec)
    assert message.startswith("invalid label selector: ")
    assert problem in message


def test_format_label_selector_for_wide_columns() -> None:
    assert format_label_selector({"matchLabels": {"app": "web"}}) == "app=web"
    assert format_label_selector({}) == "<none>"
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "Bad"}]}) == "<error>"


def test_selector_from_set() -> None:
    selector = selector_from_set({"b": "2", "a": "1"})
    assert str(selector) == "a=1,b=2"
    assert selector.matches({"a": "1", "b": "2", "c": "3"})
    assert not selector.matches({"a": "1"})
    assert selector_from_set(None).empty()
    assert isinstance(selector, LabelSelector)


# --- field selectors -----------------------------------------------------------------------------

def test_field_selector_structure_and_printing() -> None:
    selector = parse_field_selector("status.phase!=Running,metadata.name==web,spec.nodeName=n1")
    assert selector.requirements == (
        FieldRequirement("metadata.name", "==", "web"),
        FieldRequirement("spec.nodeName", "=", "n1"),
        FieldRequirement("status.phase", "!=", "Running"),
    )
    assert str(selector) == "metadata.name=web,spec.nodeName=n1,status.phase!=Running"


@pytest.mark.parametrize(("text", "fields", "expected"), [
    ("", {}, True),
    ("metadata.name=web", {"metadata.name": "web"}, True),
    ("metadata.name=web", {"metadata.name": "api"}, False),
    ("metadata.name==web", {"metadata.name": "web"}, True),
    ("status.phase!=Running", {"status.phase": "Pending"}, True),
    ("status.phase!=Running", {"status.phase": "Running"}, False),
    ("status.phase!=Running", {}, True),
    ("spec.nodeName=", {}, True),
    ("spec.nodeName=", {"spec.nodeName": ""}, True),
    ("spec.nodeName=", {"spec.nodeName": "n1"}, False),
    ("a=1,b=2", {"a": "1", "b": "2"}, True),
    ("a=1,b=2", {"a": "1", "b": "3"}, False),
    ("a=1,,b=2,", {"a": "1", "b": "2"}, True),
    ("involvedObject.name=x\\,y", {"involvedObject.name": "x,y"}, True),
])
def test_field_matches(text: str, fields: dict[str, str], expected: bool) -> None:
    assert parse_field_selector(text).matches(fields) is expected


def test_field_selector_escapes() -> None:
    selector = parse_field_selector(r"a=x\,y\=z\\w")
    assert selector.requirements == (FieldRequirement("a", "=", "x,y=z\\w"),)
    assert str(selector) == r"a=x\,y\=z\\w"
    assert parse_field_selector(r"a=b\\,c=d").requirements == (
        FieldRequirement("a", "=", "b\\"), FieldRequirement("c", "=", "d"))


def test_field_operator_split_uses_first_operator() -> None:
    assert parse_field_selector("a!b=c").requirements == (FieldRequirement("a!b", "=", "c"),)
    assert parse_field_selector("=x").requirements == (FieldRequirement("", "=", "x"),)


@pytest.mark.parametrize(("text", "message"), [
    ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
    ("b=1,zzz", "invalid selector: 'b=1,zzz'; can't understand 'zzz'"),
    ("a=b=c", "invalid field selector: unescaped character in value: ="),
    ("a==b=c", "invalid field selector: unescaped character in value: ="),
    (r"a=b\x", "invalid field selector: invalid escape sequence: \\x"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_syntax_errors(text: str, message: str) -> None:
    assert bad(parse_field_selector, text) == message


def test_field_check_supported() -> None:
    selector = parse_field_selector("metadata.name=web,spec.nodeName=n1")
    selector.check_supported({"metadata.name", "spec.nodeName", "status.phase"})
    with pytest.raises(ApiError) as info:
        selector.check_supported(["metadata.name", "metadata.namespace"])
    assert info.value.code == 400
    assert info.value.message == "field label not supported: spec.nodeName"
    assert parse_field_selector("").empty()


# -- metav1.LabelSelector objects, as controllers match them --------------------------------------
# The semantics of https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/:
# "An empty label selector (that is, one with zero requirements) selects every object in the
# collection. A null label selector (which is only possible for optional selector fields)
# selects nothing."  "notin ... also matches resources that lack the label key."

@pytest.mark.parametrize(("spec", "labels", "expected"), [
    ({"matchLabels": {"component": "redis"}}, {"component": "redis", "tier": "cache"}, True),
    ({"matchExpressions": [{"key": "environment", "operator": "In", "values": ["production", "qa"]}]},
     {"environment": "qa"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["frontend", "backend"]}]},
     {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["frontend", "backend"]}]},
     {"tier": "frontend"}, False),
    ({"matchExpressions": [{"key": "partition", "operator": "Exists"}]}, {"partition": ""}, True),
    ({"matchExpressions": [{"key": "partition", "operator": "DoesNotExist"}]}, {"partition": "a"}, False),
    ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
    ({}, {"anything": "at all"}, True),
    (None, {"app": "web"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, {"a": "2"}, False),
    ({"matchLabels": {"no spaces allowed": "x"}}, {"no spaces allowed": "x"}, False),
])
def test_matches_follows_kubernetes_semantics(spec: object, labels: dict[str, str], expected: bool) -> None:
    assert selectors.matches(spec, labels) is expected


def test_compile_spec_parses_each_selector_once_and_refuses_what_kubernetes_refuses() -> None:
    spec = {"matchLabels": {"app": "web"}}
    first, again = selectors.compile_spec(spec), selectors.compile_spec({"matchLabels": {"app": "web"}})
    assert first is not None and first is again  # cached by content
    assert selectors.compile_spec({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}) is None
    nothing = selectors.compile_spec(None)
    assert nothing is not None and not nothing.matches({})
    assert selectors.is_empty_spec({}) and selectors.is_empty_spec({"matchLabels": {}})
    assert not selectors.is_empty_spec(None) and not selectors.is_empty_spec({"matchLabels": {"a": "b"}})
