"""Shared helpers for the kinds: ages, cell formatting, name rules and quantities.

Everything here is a pure function over plain values and mirrors a Kubernetes helper:

* :func:`human_duration` / :func:`age` follow apimachinery ``duration.HumanDuration`` and the
  printers' ``translateTimestampSince`` ("<unknown>" for no timestamp, "<invalid>" for a
  timestamp more than 1 s in the future).
* :func:`format_labels` / :func:`format_selector` follow ``labels.FormatLabels`` and
  ``metav1.FormatLabelSelector``/``LabelSelectorAsSelector(...).String()``.
* The ``*_errors`` functions return Kubernetes' exact messages
  (k8s.io/apimachinery/pkg/util/validation); an empty list means valid.
* :func:`parse_quantity` parses a ``resource.Quantity`` string exactly into a ``Fraction``.

"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from shoal.resources.registry import Column

# ---------------------------------------------------------------------------- time


def parse_time(value: Any) -> datetime | None:
    """Parse an RFC 3339 timestamp (``metav1.Time`` / ``MicroTime``); None when absent/bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, like Go's ``/`` on integers."""
    q = abs(a) // b
    return q if a >= 0 else -q


def human_duration(microseconds: int) -> str:
    """``duration.HumanDuration``: ~2-3 significant figures, e.g. "45s", "3m20s", "5h", "3d4h"."""
    seconds = _trunc_div(microseconds, 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any, now: datetime) -> str:
    """Time since ``timestamp`` (an RFC 3339 string) as kubectl prints it; "<unknown>" if unset."""
    then = parse_time(timestamp)
    if then is None:
        return "<unknown>"
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    delta = now - then
    return human_duration((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)


# ---------------------------------------------------------------------------- cells

NAME_DESC = ("Name must be unique within a namespace. Is required when creating resources, although some "
             "resources may allow a client to request the generation of an appropriate name automatically. "
             "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
             "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_DESC = ("CreationTimestamp is a timestamp representing the server time when this object was created. "
            "It is not guaranteed to be set in happens-before order across separate operations. Clients may "
            "not set this value. It is represented in RFC3339 form and is in UTC.\n\n"
            "Populated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/"
            "sig-architecture/api-conventions.md#metadata")
#: The first and the age column every printer uses.
NAME_COLUMN = Column("Name", format="name", description=NAME_DESC)
AGE_COLUMN = Column("Age", description=AGE_DESC)
CONTAINERS_COLUMN = Column("Containers", priority=1,
                           description="Names of each container in the template.")
IMAGES_COLUMN = Column("Images", priority=1,
                       description="Images referenced by each container in the template.")


def name_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    return str(metadata.get("name", "")) if isinstance(metadata, Mapping) else ""


def age_of(obj: Mapping[str, Any], now: datetime) -> str:
    metadata = obj.get("metadata")
    return age(metadata.get("creationTimestamp") if isinstance(metadata, Mapping) else None, now)



def none_if_empty(value: Any, empty: str = "<none>") -> str:
    """``value`` as a string, or ``<none>`` (or ``empty``) when it is None or ""."""
    if value is None or value == "":
        return empty
    return str(value)


def join(values: Iterable[Any], sep: str = ",") -> str:
    return sep.join(str(v) for v in values)


def list_with_more(items: list[str], limit: int = 3, empty: str = "<unset>") -> str:
    """Printers' ``listWithMoreString``: first ``limit`` items, then " + N more..."."""
    if len(items) > limit:
        return f"{','.join(items[:limit])} + {len(items) - limit} more..."
    return ",".join(items) or empty


def format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: "k=v,k2=v2" sorted by key, "<none>" when empty."""
    if not isinstance(labels, Mapping) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_string(selector: Any) -> str:
    """``LabelSelectorAsSelector(sel).String()``: "" for nil/empty, sorted by key.

    Raises ValueError for an operator Kubernetes cannot convert (the printers show "<invalid>").
    """
    if not isinstance(selector, Mapping):
        return ""
    parts: list[tuple[str, str]] = []
    match_labels = selector.get("matchLabels") or {}
    for key in match_labels:
        parts.append((key, f"{key}={match_labels[key]}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = ",".join(sorted(set(expr.get("values") or [])))
        if op == "In":
            parts.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            parts.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            parts.append((key, key))
        elif op == "DoesNotExist":
            parts.append((key, f"!{key}"))
        else:
            raise ValueError(f"{op!r} is not a valid label selector operator")
    parts.sort(key=lambda p: p[0])
    return ",".join(text for _, text in parts)


def format_selector(selector: Any) -> str:
    """``metav1.FormatLabelSelector``: like :func:`selector_string` but "<none>" when empty."""
    try:
        text = selector_string(selector)
    except ValueError:
        return "<error>"
    return text or "<none>"


def container_cells(containers: Any) -> tuple[str, str]:
    """Printers' ``layoutContainerCells``: comma-joined container names and images."""
    items = [c for c in containers or [] if isinstance(c, Mapping)]
    return (",".join(str(c.get("name", "")) for c in items),
            ",".join(str(c.get("image", "")) for c in items))


# ---------------------------------------------------------------------------- names


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery ``RegexError`` (note the double space in "',  or '")."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. " + " or ".join(f"'{e}', " for e in examples)
    return text + f"regex used for validation is '{fmt}')"


_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _QUALIFIED_NAME + ")?"
_CONFIG_KEY = "[-._a-zA-Z0-9]+"
_PERCENT = "[0-9]+%"


def _full(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + pattern + "$")


_RE = {name: _full(p) for name, p in (
    ("label", _DNS1123_LABEL), ("subdomain", _DNS1123_SUBDOMAIN), ("dns1035", _DNS1035_LABEL),
    ("qualified", _QUALIFIED_NAME), ("value", _LABEL_VALUE), ("key", _CONFIG_KEY),
    ("percent", _PERCENT))}


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_label_errors(value: str) -> list[str]:
    errs = [max_len_error(63)] if len(value) > 63 else []
    if not _RE["label"].match(value):
        errs.append(regex_error("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                                "characters or '-', and must start and end with an alphanumeric character",
                                _DNS1123_LABEL, "my-name", "123-abc"))
    return errs


def dns1123_subdomain_errors(value: str) -> list[str]:
    errs = [max_len_error(253)] if len(value) > 253 else []
    if not _RE["subdomain"].match(value):
        errs.append(regex_error("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                                "characters, '-' or '.', and must start and end with an alphanumeric "
                                "character", _DNS1123_SUBDOMAIN, "example.com"))
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    errs = [max_len_error(63)] if len(value) > 63 else []
    if not _RE["dns1035"].match(value):
        errs.append(regex_error("a DNS-1035 label must consist of lower case alphanumeric characters or "
                                "'-', start with an alphabetic character, and end with an alphanumeric "
                                "character", _DNS1035_LABEL, "my-name", "abc-123"))
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """``IsQualifiedName``: an optional DNS-subdomain prefix and "/" before a 63-char name."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs = ["prefix part must be non-empty"]
        else:
            errs = ["prefix part " + m for m in dns1123_subdomain_errors(prefix)]
    else:
        return [regex_error("a qualified name must consist of alphanumeric characters, '-', '_' or '.', "
                            "and must start and end with an alphanumeric character", _QUALIFIED_NAME,
                            "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if name and not _RE["qualified"].match(name):
        errs.append(regex_error("name part must consist of alphanumeric characters, '-', '_' or '.', and "
                                "must start and end with an alphanumeric character", _QUALIFIED_NAME,
                                "MyName", "my.name", "123-abc"))
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = [max_len_error(63)] if len(value) > 63 else []
    if not _RE["value"].match(value):
        errs.append(regex_error("a valid label must be an empty string or consist of alphanumeric "
                                "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                                "character", _LABEL_VALUE, "MyValue", "my_value", "12345"))
    return errs


def config_key_errors(value: str) -> list[str]:
    """``IsConfigMapKey``: keys of ConfigMap/Secret data."""
    errs = [max_len_error(253)] if len(value) > 253 else []
    if not _RE["key"].match(value):
        errs.append(regex_error("a valid config key must consist of alphanumeric characters, '-', '_' "
                                "or '.'", _CONFIG_KEY, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def port_name_errors(value: str) -> list[str]:
    """``IsValidPortName`` (an IANA_SVC_NAME)."""
    errs = [max_len_error(15)] if len(value) > 15 else []
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_num_errors(value: Any) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return ["must be between 1 and 65535, inclusive"]
    return []


def percent_errors(value: str) -> list[str]:
    if _RE["percent"].match(value):
        return []
    return [regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                        _PERCENT, "1%", "93%")]


def ip_errors(value: Any) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def cidr_errors(value: Any) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []


# ---------------------------------------------------------------------------- quantities

QUANTITY_PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                       r"(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][-+]?[0-9]+)?$")
_SUFFIX = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
    "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}


def parse_quantity(value: Any) -> Fraction:
    """Exact value of a ``resource.Quantity`` ("500m" -> 1/2, "1Gi" -> 2**30, 2 -> 2).

    Raises ValueError with Kubernetes' message for anything that is not a quantity.
    """
    if isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression '{QUANTITY_PATTERN}'")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"quantities must match the regular expression '{QUANTITY_PATTERN}'")
    number, suffix = Fraction(match.group(1)), match.group(2) or ""
    if suffix not in _SUFFIX:  # a decimal exponent, "e3" / "E-2"
        return number * Fraction(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]
