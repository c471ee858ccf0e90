"""Size limits of what a handler writes, each checked where the value is produced.

A handler's values go to Redis as JSON text; each kind has one limit, set by a
setting an operator tunes (``max_output_bytes``, ``max_checkpoint_bytes``,
``max_metadata_bytes``, ``max_record_bytes``) or, for tags, the same constants
a submission is held to. Over its limit a value never reaches Redis: the call
that produced it raises :class:`~runtime.errors.ValueTooLarge` (or
:class:`~runtime.errors.OutputTooLarge` for results), which fails the attempt
permanently when the handler lets it through, since a retry would produce the
same value. Log entries are the exception: a log call must not break the
handler, so an entry over the limit is cut to fit and says so.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import OutputTooLarge, ValueNotStorable, ValueTooLarge
from .json_values import encode, refusal
from .settings import Settings
from .submission import MAX_TAG_LEN, MAX_TAGS

__all__ = ["check_size", "check_tags", "fit_log_entry", "json_size", "output_json", "stored_json"]


def json_size(text: str) -> int:
    """Bytes of a JSON text as Redis stores it (UTF-8)."""
    return len(text) if text.isascii() else len(text.encode())


def check_size(what: str, text: str, settings: Settings, limit_name: str) -> str:
    """``text`` (a JSON value) when it is within the setting ``limit_name``; else raises ValueTooLarge,
    or OutputTooLarge for ``max_output_bytes``."""
    limit = int(getattr(settings, limit_name))
    if len(text) <= limit // 4:  # fewer characters than a quarter of the limit: within it in any encoding
        return text
    size = json_size(text)
    if size > limit:
        error = OutputTooLarge if limit_name == "max_output_bytes" else ValueTooLarge
        raise error(what, size, limit, limit_name)
    return text


def stored_json(what: str, value: Any, settings: Settings, limit_name: str) -> str:
    """A value a handler produced (``what`` names it) as the JSON text stored for it: ValueNotStorable when
    it cannot be stored (json_values.encode), ValueTooLarge / OutputTooLarge over the setting ``limit_name``.
    Both are permanent: another attempt would produce the same value."""
    try:
        text = encode(value)
    except TypeError as exc:  # (orjson's encode error, or a value encode refuses)
        raise ValueNotStorable(refusal(what, exc)) from None
    return check_size(what, text, settings, limit_name)


def output_json(settings: Settings, result: Any) -> str:
    """A handler's return value as the JSON text its run records (see stored_json)."""
    return stored_json("the handler's return value", result, settings, "max_output_bytes")


def check_tags(tags: list[str]) -> None:
    """A run's tags within what a submission may carry (MAX_TAGS tags of at most MAX_TAG_LEN characters)."""
    if len(tags) > MAX_TAGS:
        raise ValueTooLarge("tags", len(tags), MAX_TAGS, "MAX_TAGS", "tags")
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"tags must be strings, not {type(tag).__name__}")
        if len(tag) > MAX_TAG_LEN:
            raise ValueTooLarge(f"tag {tag[:32]!r}...", len(tag), MAX_TAG_LEN, "MAX_TAG_LEN", "characters")


def fit_log_entry(entry: dict[str, Any], settings: Settings) -> str:
    """A log entry's JSON (a value that is not JSON as its str) within max_record_bytes and what Baton
    stores (runtime/json_values.py): an entry over the limit, or whose data cannot be stored, keeps the
    start of its message, drops its data and says why."""
    limit = settings.max_record_bytes
    try:
        text = encode(entry, default=str)
    except TypeError as exc:  # its data nests too deep: a log call must not break the handler
        return _cut_log_entry(entry, f" [log entry data dropped: {exc}]", limit)
    size = json_size(text) if len(text) > limit // 4 else 0
    if size <= limit:
        return text
    return _cut_log_entry(entry, f" [log entry cut: it was {size} bytes; the limit is {limit} (max_record_bytes)]",
                          limit)


def _cut_log_entry(entry: dict[str, Any], note: str, limit: int) -> str:
    # a quarter of the limit in characters is within it in any encoding, with room for the other fields
    message = str(entry.get("message") or "")[: max(limit // 4 - len(note) - 1024, 0)]
    cut = {**entry, "message": message + note, "data": None}
    return orjson.dumps(cut, default=str).decode()


def fit_error(message: str, stack: str, settings: Settings) -> tuple[str, str]:
    """An attempt's error message and stack, each cut to a quarter of max_record_bytes (in characters,
    within the limit in any encoding): an exception's text can be as large as the handler made it."""
    room = max(settings.max_record_bytes // 4, 64)
    note = " [cut: max_record_bytes]"
    if len(message) > room:
        message = message[: room - len(note)] + note
    if len(stack) > room:
        stack = note.strip() + " ..." + stack[-(room - len(note) - 4):]  # the end of a stack is where it failed
    return message, stack
