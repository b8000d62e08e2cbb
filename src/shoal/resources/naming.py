"""Kubernetes' name and value rules, with its exact messages (apimachinery ``util/validation``).

Each ``*_errors`` function returns the list of messages Kubernetes gives for a bad value; an
empty list means valid.  Validation of every kind builds its field errors from these.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any


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
