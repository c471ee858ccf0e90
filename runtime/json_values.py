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
  ``1.2345678901234568e+29``: it is refused instead, and can be sent as a string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from .ranges import shown

__all__ = ["MAX_JSON_DEPTH", "TooDeep", "decode", "encode", "refusal"]

#: Deepest nesting accepted in JSON Baton stores (see the module docstring).
MAX_JSON_DEPTH = 200
#: levels orjson encodes at most
_ORJSON_DEPTH = 255
#: the integers orjson reads exactly
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
#: the shortest run of digits that can spell an integer beyond them (2**63 has 19 digits)
_LONG_DIGITS = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")


class TooDeep(orjson.JSONEncodeError):
    """A value nested deeper than MAX_JSON_DEPTH levels (an encode error like orjson's own, which is a
    TypeError: whatever handles those handles this)."""

    def __init__(self) -> None:
        super().__init__(f"nests deeper than {MAX_JSON_DEPTH} levels")


def encode(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as the JSON text Baton stores (``default``: orjson's, for what it cannot encode itself).
    orjson's JSONEncodeError (a TypeError) when orjson cannot encode it, TooDeep (one too) when it nests
    deeper than MAX_JSON_DEPTH levels."""
    text = orjson.dumps(value, default=default).decode()
    if _too_deep(text, value):
        raise TooDeep
    return text


def refusal(what: str, exc: TypeError) -> str:
    """Why ``encode`` refused ``what``, as a sentence: "<what> nests deeper than ..." or "<what> is not
    JSON-serialisable: <orjson's reason>"."""
    return f"{what} {exc}" if isinstance(exc, TooDeep) else f"{what} is not JSON-serialisable: {exc}"


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
        path, literal = found
        shown_literal = literal if len(literal) <= 40 else f"{literal[:37]}..."
        raise ValueError(f"holds the integer {shown_literal}{f' at {path}' if path else ''}, beyond 64 bits: "
                         "it would be read back as a float (send it as a string)")


class _Beyond:
    """An integer literal beyond what orjson reads exactly, as the second read of the text keeps it."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _first_beyond(value: Any, path: str) -> tuple[str, str] | None:
    """Where the first _Beyond in ``value`` is, and its literal (depth-first, in document order)."""
    if isinstance(value, _Beyond):
        return path, value.literal
    if isinstance(value, dict):
        items: Any = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for where, item in items:
        if (found := _first_beyond(item, where)) is not None:
            return found
    return None
