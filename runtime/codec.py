"""Decoding of what redis-py returns: bytes or str, whichever the client is set up for."""

from __future__ import annotations

from typing import Any

__all__ = ["digits", "text"]


def text(value: Any) -> str:
    """A reply value as str: bytes are decoded as UTF-8 (bytes that are not, from corruption, come out
    with U+FFFD in their place, never an exception); anything else goes through str()."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def digits(value: str) -> bool:
    """Whether ``value`` is one or more ASCII digits 0-9: what int() reads as the number it shows.
    (str.isdigit() takes "²", which int() refuses, and "١", which it reads as 1.)"""
    return value.isascii() and value.isdigit()
