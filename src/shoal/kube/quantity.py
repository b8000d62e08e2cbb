"""``resource.Quantity``: the amounts of CPU, memory and storage in Kubernetes objects.

:func:`parse_quantity` gives the exact value of a quantity as a ``Fraction`` ("500m" -> 1/2,
"1Gi" -> 2**30, "1e3" -> 1000, an int or float as itself).  Anything else raises
``ValueError`` with Kubernetes' message, which validation reports against the field.
Callers round as their Kubernetes counterpart does (the scheduler floors allocatable, cgroup
limits round up).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

__all__ = ["QUANTITY_PATTERN", "parse_quantity"]

#: The pattern Kubernetes names in its error message (and the OpenAPI ``format``).
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
    """Exact value of a ``resource.Quantity``; raises ValueError for anything else."""
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

