"""``resource.Quantity`` parsing (shoal.kube.quantity), with Kubernetes' suffixes and message."""

from __future__ import annotations

from fractions import Fraction

import pytest

from shoal.kube import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("1", Fraction(1)),
        ("1.5", Fraction(3, 2)),
        ("2Gi", Fraction(2 * 2**30)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1k", Fraction(1000)),
        ("1e3", Fraction(1000)),
        ("1E", Fraction(10**18)),
        ("100n", Fraction(1, 10**7)),
        (".5", Fraction(1, 2)),
        (3, Fraction(3)),
    ],
)
def test_parse_quantity(text: str | int, value: Fraction) -> None:
    assert quantity.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1GB", "1.2.3", "--1", True])
def test_parse_quantity_rejects_garbage(text: object) -> None:
    with pytest.raises(ValueError, match="quantities must match the regular expression"):
        quantity.parse_quantity(text)
