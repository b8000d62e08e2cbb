"""Bounded YAML decoding of request bodies into JSON values (see :mod:`shoal.api.decode`).

:func:`decode_yaml` reads one YAML document in two passes:

1. **Events** (the parser is a state machine, so this pass never recurses): the nesting depth,
   aliases included (an alias counts as deep as the node it names, placed where it stands), is
   at most :data:`~shoal.api.decode.MAX_DEPTH`; an alias never names a node that is still open
   (a recursive structure); and aliases at most double the document (expanded nodes <=
   2 x written nodes + 10,000), else 400 "yaml: document contains excessive aliasing" as go-yaml
   says.  Only then is anything composed, and composing (which recurses once or twice per
   level) is safe.
2. **Construction** into JSON values only, as sigs.k8s.io/yaml converts YAML to JSON for
   Kubernetes: mapping keys become strings (``1`` -> ``"1"``, ``true`` -> ``"true"``, ``null``
   -> ``"null"``); timestamps and ``!!binary`` stay the strings written; ``!!set`` is a mapping
   to ``null``; integers beyond 64 bits become floats (as orjson reads them in JSON); ``.nan`` and
   ``.inf``, ``!!omap``, ``!!pairs`` and unknown tags are refused.  Shared (aliased) nodes are
   copied apart, so the result is a tree.  Duplicate keys keep the last value and are reported
   as go-yaml's strict error ``line N: key "k" already set in map``.

Every error is a 400 BadRequest "error decoding YAML request body: ..." with the line and
column the YAML library names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import orjson
import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import Resolver

from shoal.api.decode import MAX_DEPTH, MAX_STRICT_ERRORS, Decoded, checked_json, cut, depth_error, is_depth_error
from shoal.kube import errors

__all__ = ["decode_yaml", "decode_yaml_or_json"]

WHAT = "YAML request body"
_MERGE = "tag:yaml.org,2002:merge"
_INT_RANGE = (-(2**63), 2**64 - 1)
#: Nodes that aliases may add beyond doubling the document.
ALIAS_ALLOWANCE = 10_000


def decode_yaml_or_json(body: bytes) -> Decoded:
    """A YAML body, read by orjson when it is JSON (what kubectl sends as apply-patch+yaml)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if is_depth_error(exc):
            raise depth_error(WHAT, f"char {exc.pos}") from exc
        return decode_yaml(body)
    return checked_json(body, value, WHAT)


def decode_yaml(body: bytes) -> Decoded:
    """Decode one YAML document (JSON is YAML too) within the limits above."""
    try:
        aliased = _check_events(body)
        loader = _Loader(body)
        try:
            value = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"error decoding {WHAT}: {exc}") from exc
    if aliased:
        value = orjson.loads(orjson.dumps(value))  # aliases are copies in JSON, not shared nodes
    duplicates = [f"line {line}: key {json.dumps(cut(key))} already set in map"
                  for line, key in sorted(loader.duplicates)]
    return Decoded(value, tuple(duplicates[:MAX_STRICT_ERRORS]))


# -- pass 1: events ------------------------------------------------------------------------

class _Open:
    """A collection whose end event has not come yet."""

    __slots__ = ("anchor", "deepest", "nodes")

    def __init__(self, anchor: str | None) -> None:
        self.anchor = anchor
        self.nodes = 1
        self.deepest = 0  # depth of the deepest child collection


def _where(event: yaml.Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown place"


def _events(body: bytes) -> Iterator[yaml.Event]:
    parser = _Loader(body)
    try:
        while parser.check_event():
            event = parser.get_event()
            if event is not None:
                yield event
    finally:
        parser.dispose()


def _check_events(body: bytes) -> bool:
    """Depth and alias checks on the parser's events; True when the document uses aliases."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, depth)
    stack: list[_Open] = []
    written = expanded = 0
    aliased = False
    for event in _events(body):
        if isinstance(event, yaml.DocumentStartEvent):
            anchors.clear()
            written = expanded = 0
            continue
        if isinstance(event, yaml.CollectionStartEvent):
            written += 1
            if len(stack) >= MAX_DEPTH:
                raise depth_error(WHAT, _where(event))
            stack.append(_Open(event.anchor))
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            done = stack.pop()
            nodes, depth = done.nodes, done.deepest + 1
            if done.anchor is not None:
                anchors[done.anchor] = (nodes, depth)
        elif isinstance(event, yaml.AliasEvent):
            aliased = True
            written += 1
            if event.anchor in (o.anchor for o in stack):
                raise errors.bad_request(f"error decoding {WHAT}: alias *{event.anchor} at {_where(event)} "
                                         "refers to a node that contains it")
            nodes, depth = anchors.get(event.anchor or "", (1, 0))
            if len(stack) + depth > MAX_DEPTH:
                raise depth_error(WHAT, _where(event))
        elif isinstance(event, yaml.ScalarEvent):
            written += 1
            nodes, depth = 1, 0
            if event.anchor is not None:
                anchors[event.anchor] = (nodes, depth)
        else:
            continue
        if stack:
            stack[-1].nodes += nodes
            stack[-1].deepest = max(stack[-1].deepest, depth)
        else:
            expanded += nodes
            if expanded > 2 * written + ALIAS_ALLOWANCE:
                raise errors.bad_request(f"error decoding {WHAT}: yaml: document contains excessive aliasing")
    return aliased


# -- pass 2: construction into JSON values -------------------------------------------------

def _json_key(key: Any) -> str:
    """A mapping key as sigs.k8s.io/yaml writes it in JSON."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return json.dumps(key)
    raise TypeError(key)


class _JsonConstructor(SafeConstructor):
    """SafeConstructor that builds only values JSON (and so the store) can hold."""

    duplicates: list[tuple[int, str]]  # (line, key)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool | None):
                raise ConstructorError("while constructing a mapping", node.start_mark,
                                       "found a key that is not a scalar", key_node.start_mark)
            text = _json_key(key)
            if text in seen:
                self.duplicates.append((key_node.start_mark.line + 1, text))
            seen.add(text)
        mapping = super().construct_mapping(node, deep=deep)
        return {_json_key(k): v for k, v in mapping.items()}

    def construct_json_string(self, node: Node) -> str:
        assert isinstance(node, ScalarNode)
        return str(self.construct_scalar(node))

    def construct_json_int(self, node: Node) -> int | float:
        value: int = super().construct_yaml_int(node)  # type: ignore[arg-type]
        if _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            return value
        return float(value)

    def construct_json_float(self, node: Node) -> float:
        value: float = super().construct_yaml_float(node)  # type: ignore[arg-type]
        if math.isnan(value) or math.isinf(value):
            raise ConstructorError(None, None, f"{value} is not a JSON number", node.start_mark)
        return value

    def construct_json_set(self, node: Node) -> Any:
        data: dict[str, Any] = {}
        yield data
        assert isinstance(node, MappingNode)
        data.update(self.construct_mapping(node))

    def construct_unsupported(self, node: Node) -> Any:
        raise ConstructorError(None, None, f"{node.tag} has no JSON form", node.start_mark)


_JsonConstructor.yaml_constructors = {
    **SafeConstructor.yaml_constructors,
    **{f"tag:yaml.org,2002:{tag}": constructor for tag, constructor in (
        ("timestamp", _JsonConstructor.construct_json_string),
        ("binary", _JsonConstructor.construct_json_string),
        ("int", _JsonConstructor.construct_json_int),
        ("float", _JsonConstructor.construct_json_float),
        ("set", _JsonConstructor.construct_json_set),
        ("omap", _JsonConstructor.construct_unsupported),
        ("pairs", _JsonConstructor.construct_unsupported))},
}

if yaml.__with_libyaml__:  # the PyPI wheels bundle libyaml: C parser and composer
    from yaml._yaml import CParser

    class _Loader(CParser, _JsonConstructor, Resolver):
        def __init__(self, stream: bytes) -> None:
            CParser.__init__(self, stream)
            _JsonConstructor.__init__(self)
            Resolver.__init__(self)
            self.duplicates = []
else:  # pragma: no cover
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(Reader, Scanner, Parser, Composer, _JsonConstructor, Resolver):  # type: ignore[no-redef]
        def __init__(self, stream: bytes) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            _JsonConstructor.__init__(self)
            Resolver.__init__(self)
            self.duplicates = []
