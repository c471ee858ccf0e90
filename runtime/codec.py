"""Decoding of what redis-py returns: bytes or str, whichever the client is set up for."""

from __future__ import annotations

from typing import Any

__all__ = ["text"]


def text(value: Any) -> str:
    """A reply value as str (UTF-8 bytes are decoded; anything else goes through str())."""
    return value.decode() if isinstance(value, bytes) else str(value)
