"""Decoding of what redis-py returns: bytes or str, whichever the client is set up for."""

from __future__ import annotations

from typing import Any

__all__ = ["text"]


def text(value: Any) -> str:
    """A reply value as str: bytes are decoded as UTF-8 (bytes that are not, from corruption, come out
    with U+FFFD in their place, never an exception); anything else goes through str()."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
