"""The JSON Baton takes in and stores: one rule for every door and every value a run keeps.

Every value Baton stores as JSON (a run's input, metadata, tags and labels, a signal's, event's or
token's data, a step's output, a handler's result, a run's state, a log entry's data) is encoded by
``encode``, and every JSON text that comes in from outside (an API request body, a stream entry's
JSON field, the CLI's ``--input``) is read by ``decode``. So a value is stored only if it can be
shown again, and what a client sent is what it reads back:

- nesting: at most ``MAX_JSON_DEPTH`` levels. orjson encodes at most 255, and responses and views
  wrap a stored value in a few more: a value nested deeper could be stored but never shown again
  (every read of its run would fail);
- integers: within 64 bits (-2**63 to 2**64-1), what orjson reads exactly. orjson reads a longer
  integer literal as a float, so ``123456789012345678901234567890`` would silently become
  ``1.2345678901234568e+29``: it is refused instead, and can be sent as a string;
- numbers: finite. JSON has no NaN or Infinity, and orjson writes them as ``null``: a step that
  returned NaN would see it on its first execution and ``None`` on every replay. A Python value
  holding one is refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from .ranges import shown

__all__ = ["MAX_JSON_DEPTH", "NotFinite", "TooDeep", "Unstorable", "decode", "encode", "refusal"]

#: Deepest nesting accepted in JSON Baton stores (see the module docstring).
MAX_JSON_DEPTH = 200
#: levels orjson encodes at most
_ORJSON_DEPTH = 255
#: the integers orjson reads exactly
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
#: the shortest run of digits that can spell an integer beyond them (2**63 has 19 digits)
_LONG_DIGITS = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")


class Unstorable(orjson.JSONEncodeError):
    """A value orjson encodes but Baton does not store (an encode error like orjson's own, which is a
    TypeError: whatever handles those handles these). Its text completes "<what> ..."."""


class TooDeep(Unstorable):
    """A value nested deeper than MAX_JSON_DEPTH levels."""

    def __init__(self) -> None:
        super().__init__(f"nests deeper than {MAX_JSON_DEPTH} levels")


class NotFinite(Unstorable):
    """A value holding a float NaN or infinity, which JSON cannot carry."""

    def __init__(self, path: str, number: float) -> None:
        super().__init__(f"holds {number}{f' at {path}' if path else ''}: JSON has no NaN or Infinity "
                         "(it would be stored as null)")


def encode(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as the JSON text Baton stores (``default``: orjson's, for what it cannot encode itself).
    orjson's JSONEncodeError (a TypeError) when orjson cannot encode it, Unstorable (one too) when it nests
    deeper than MAX_JSON_DEPTH levels or holds a float that is not finite."""
    text = orjson.dumps(value, default=default).decode()
    if _too_deep(text, value):
        raise TooDeep
    # (orjson writes NaN and infinities as null: only a text with a null can hold one)
    if "null" in text and (found := _first_not_finite(value, "")) is not None:
        raise NotFinite(*found)
    return text


def refusal(what: str, exc: TypeError) -> str:
    """Why ``encode`` refused ``what``, as a sentence: "<what> nests deeper than ...", "<what> holds nan
    at ..." or "<what> is not JSON-serialisable: <orjson's reason>"."""
    return f"{what} {exc}" if isinstance(exc, Unstorable) else f"{what} is not JSON-serialisable: {exc}"


def decode(raw: bytes | str) -> Any:
    """JSON text that comes in from outside, read. ValueError, whose text completes "<what> ...", when
    it is not JSON, nests deeper than MAX_JSON_DEPTH levels, or holds an integer beyond 64 bits."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON: {shown(str(exc), 200)}") from None
    if _too_deep(raw, value):
        raise ValueError(str(TooDeep()))
    # (rare: only then is the text read a second time)
    if _LONG_DIGITS.search(raw) if isinstance(raw, str) else _LONG_DIGITS_BYTES.search(raw):
        _check_integers(raw)
    return value


def _too_deep(text: bytes | str, value: Any) -> bool:
    """Whether ``value`` (``text`` decoded) nests deeper than MAX_JSON_DEPTH levels. Only text with
    more brackets than that can: the common case costs two counts, the rare one an encode of the value
    wrapped in the levels between the limit and orjson's."""
    if isinstance(text, bytes):
        brackets = text.count(b"[") + text.count(b"{")
    else:
        brackets = text.count("[") + text.count("{")
    if brackets <= MAX_JSON_DEPTH:
        return False
    wrapped = value
    for _ in range(_ORJSON_DEPTH - MAX_JSON_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except TypeError:
        return True
    return False


def _check_integers(data: bytes | str) -> None:
    """ValueError for the first integer literal of ``data`` (valid JSON, nested within the limit) that
    orjson would read as a float, naming where it is (``max_attempts``, ``input.items[2]``)."""

    def exact(literal: str) -> int | _Beyond:
        number = int(literal)
        return number if _INT_MIN <= number <= _INT_MAX else _Beyond(literal)

    found = _first_beyond(json.loads(data, parse_int=exact), "")
    if found is not None:
        path, literal = found[0], found[1].literal
        shown_literal = literal if len(literal) <= 40 else f"{literal[:37]}..."
        raise ValueError(f"holds the integer {shown_literal}{f' at {path}' if path else ''}, beyond 64 bits: "
                         "it would be read back as a float (send it as a string)")


class _Beyond:
    """An integer literal beyond what orjson reads exactly, as the second read of the text keeps it."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _first_not_finite(value: Any, path: str) -> tuple[str, Any] | None:
    """Where the first float NaN or infinity in ``value`` is, and it."""
    return _first(value, path, lambda v: isinstance(v, float) and not math.isfinite(v))


def _first_beyond(value: Any, path: str) -> tuple[str, Any] | None:
    """Where the first _Beyond in ``value`` is, and it."""
    return _first(value, path, lambda v: isinstance(v, _Beyond))


def _first(value: Any, path: str, wanted: Callable[[Any], bool]) -> tuple[str, Any] | None:
    """Where in ``value`` the first item ``wanted`` picks is (``input.items[2]``), and that item: depth-first,
    in document order."""
    if wanted(value):
        return path, value
    if isinstance(value, dict):
        items: Any = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for where, item in items:
        if (found := _first(item, where, wanted)) is not None:
            return found
    return None
    for where, item in items:
        if (found := _first_beyond(item, where)) is not None:
            return found
    return None
