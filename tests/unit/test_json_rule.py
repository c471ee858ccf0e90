"""The JSON rule of runtime/json_values.py for values Python hands in: NaN and infinities are refused, not
written as null (orjson's way), naming where they are."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.json_values import NotFinite, encode, refusal


@pytest.mark.parametrize(("value", "where"), [
    (float("nan"), "nan: JSON"), ({"x": float("nan")}, "nan at x:"), ([1, None, float("inf")], "inf at [2]:"),
    ({"a": [{"b": (0.5, float("-inf"))}]}, "-inf at a[0].b[1]:"),
])
def test_a_float_json_cannot_carry_is_refused_where_it_is(value: Any, where: str) -> None:
    with pytest.raises(NotFinite) as caught:
        encode(value)
    # Then the refusal says where, completing a sentence about the value, and is a TypeError like orjson's
    assert isinstance(caught.value, TypeError)
    assert refusal("the input", caught.value).startswith(f"the input holds {where}"), caught.value


def test_nulls_and_finite_floats_are_stored_as_they_are() -> None:
    assert encode({"a": None, "b": [1.5, -0.0, 1e308], "c": (None,)}) == '{"a":null,"b":[1.5,-0.0,1e+308],"c":[null]}'
