"""Stream entries the intake rejected, as operators read them (``GET /v1/rejected``, ``baton rejected ls``,
``baton get`` of a rejected entry).

The intake writes each rejection to the capped rejected stream (``rejected_max_len``) with the entry's id,
the reason and message, and bounded prefixes of its fields (runtime/stream_entries.py, rejected_record).
"""

from __future__ import annotations

from typing import Any

import orjson

from .app import Baton
from .codec import digits, text
from .records import iso

__all__ = ["LOOKED_AT", "find_rejection", "list_rejections"]

#: rejections looked at for one entry id: its rejection follows it in the stream, within a batch's time
LOOKED_AT = 1000


def _stream_id(value: str) -> tuple[str, str] | None:
    """A stream id's milliseconds and sequence, or None when it is not one."""
    ms, sep, seq = value.partition("-")
    return (ms, seq) if digits(ms) and sep and digits(seq) else None


def _rejection(stream_id: bytes | str, fields: dict[bytes, bytes]) -> dict[str, Any]:
    """One rejection as the API shows it."""
    rid = text(stream_id)
    try:
        kept = orjson.loads(fields.get(b"fields", b"{}"))
    except orjson.JSONDecodeError:
        kept = {}
    size = text(fields.get(b"size", b"0"))
    return {"id": rid, "rejected_at": iso(int(rid.partition("-")[0])), "entry_id": text(fields.get(b"entry_id", b"")),
            "reason": text(fields.get(b"reason", b"")), "error": text(fields.get(b"error", b"")), "fields": kept,
            "size": int(size) if digits(size) else 0, "truncated": fields.get(b"truncated") == b"1"}


async def list_rejections(app: Baton, limit: int, before: str | None = None) -> tuple[list[dict[str, Any]],
                                                                                      str | None]:
    """The latest rejections, newest first (before the rejection ``before`` if given), and the cursor of the
    next page (None on the last)."""
    top = f"({before}" if before else "+"
    entries = await app.redis.xrevrange(app.keys.rejected_stream, max=top, min="-", count=limit + 1)
    page = [_rejection(sid, fields) for sid, fields in entries[:limit]]
    return page, page[-1]["id"] if len(entries) > limit else None


async def find_rejection(app: Baton, entry_id: str) -> dict[str, Any] | None:
    """The rejection of a stream entry, or None (not rejected, or out of the capped stream). An entry's
    rejection is written after the entry, so the search starts at the entry's own time."""
    parts = _stream_id(entry_id)
    if parts is None:
        return None
    entries = await app.redis.xrange(app.keys.rejected_stream, min=f"{parts[0]}-0", count=LOOKED_AT)
    wanted = entry_id.encode()
    return next((_rejection(sid, fields) for sid, fields in entries if fields.get(b"entry_id") == wanted), None)
