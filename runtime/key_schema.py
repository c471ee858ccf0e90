"""The key schema: every key family of runtime/keys.py described once, for Lua and the README.

Each public method or property of :class:`~runtime.keys.Partition` and
:class:`~runtime.keys.Keys` that returns a key is a *family*. Calling it with
placeholder arguments yields its template, from which ``lua_includes`` writes
``includes/keys.lua`` (so Lua builds partition keys with the same templates,
never by hand) and :func:`layout_markdown` writes the README's Redis layout.
The data type comes from the family's docstring, e.g. ``(ZSET, score = ...)``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

from .keys import Keys, Partition

__all__ = ["KeyFamily", "families", "layout_markdown"]

_PREFIX = "\x00prefix\x00"
_BASE = "\x00base\x00"
_SLOT = re.compile(r"\x00(\w+)\x00")
_TYPE = re.compile(r"\((HASH|ZSET|SET|STRING|STREAM|LIST)\b[^)]*\)")
#: members of Partition and Keys that are not key families
_NOT_KEYS = frozenset({"index", "prefix", "partition_count", "partitions", "partition_for",
                       "partition_of_run", "intake_group", "outbox_group", "entry_ref", "tag"})


@dataclass(frozen=True)
class KeyFamily:
    """One kind of key: its name in keys.py, its template, its Redis type and meaning."""

    name: str
    scope: str  #: "partition" (hash tag {<prefix>:p<N>}) or "node" (hash tag {<prefix>})
    params: tuple[str, ...]
    #: the key as literal text and parameter slots, e.g. ("run:", "\x00run_id\x00") after the prefix
    parts: tuple[str, ...]
    redis_type: str  #: HASH, ZSET ..., or "channel" for pub/sub
    doc: str

    def lua(self) -> str:
        """The Lua function building this key from the partition prefix ``P``."""
        pieces = ["P"] + [_lua_piece(part) for part in self.parts]
        args = ", ".join(("P", *self.params))
        return f"function K.{self.name}({args}) return {' .. '.join(pieces)} end"

    def example(self, tag: str) -> str:
        """The key as the README shows it, e.g. ``{baton:p0}:run:<run_id>``."""
        return tag + "".join(f"<{m.group(1)}>" if (m := _SLOT.fullmatch(p)) else p for p in self.parts)

    def meaning(self) -> str:
        """The docstring without its type note."""
        text = _TYPE.sub(lambda m: _without_type(m.group(0)), self.doc).replace(" \x00", "")
        return " ".join(text.replace("|", "\\|").split())


def families() -> list[KeyFamily]:
    """Every key family: those of a partition, then the node-wide ones."""
    return (_families_of(Partition, Partition(0, _PREFIX), "partition", _PREFIX)
            + _families_of(Keys, Keys(_BASE), "node", "{" + _BASE + "}:"))


def _families_of(cls: type, instance: object, scope: str, prefix: str) -> list[KeyFamily]:
    found = []
    for name, member in vars(cls).items():
        if name.startswith("_") or name in _NOT_KEYS:
            continue
        if isinstance(member, property):
            params: tuple[str, ...] = ()
            value = getattr(instance, name)
        elif inspect.isfunction(member):
            params = tuple(p for p in inspect.signature(member).parameters if p != "self")
            value = getattr(instance, name)(*(f"\x00{p}\x00" for p in params))
        else:
            continue
        found.append(_described(name, scope, params, value, prefix, member.__doc__ or ""))
    return found


def _described(name: str, scope: str, params: tuple[str, ...], value: str, prefix: str,
               doc: str) -> KeyFamily:
    if doc.startswith("Pub/sub channel"):
        redis_type, rest = "channel", value.replace(_BASE, "")
        parts: tuple[str, ...] = (rest,)
    else:
        if not value.startswith(prefix):
            raise ValueError(f"key family {name} does not start with its prefix")
        typed = _TYPE.search(doc)
        if typed is None:
            raise ValueError(f"key family {name}: its docstring names no Redis type (HASH, ZSET ...)")
        redis_type = typed.group(1)
        parts = tuple(p for p in re.split(r"(\x00\w+\x00)", value[len(prefix):]) if p)
    for part in parts:
        if not _SLOT.fullmatch(part) and not re.fullmatch(r"[A-Za-z0-9:_|.-]*", part):
            raise ValueError(f"key family {name}: unexpected literal {part!r}")
    return KeyFamily(name, scope, params, parts, redis_type, " ".join(doc.split()))


def _lua_piece(part: str) -> str:
    slot = _SLOT.fullmatch(part)
    return slot.group(1) if slot else f"'{part}'"


def _without_type(note: str) -> str:
    inner = note[1:-1]
    rest = re.sub(r"^(HASH|ZSET|SET|STRING|STREAM|LIST)\b[;,]?\s*", "", inner)
    return f"({rest})" if rest else "\x00"  # "\x00": drop the note and the space before it


def layout_markdown(prefix: str = "baton") -> str:
    """The README's table of Redis keys, generated from the key families."""
    rows = ["| key | type | holds |", "|---|---|---|"]
    for f in families():
        if f.scope == "partition":
            example = f.example(f"{{{prefix}:p0}}:")
        elif f.redis_type == "channel":
            example = f"{prefix}" + f.parts[0]
        else:
            example = f.example(f"{{{prefix}}}:")
        rows.append(f"| `{example.replace('|', chr(92) + '|')}` | {f.redis_type.lower()} | {f.meaning()} |")
    return "\n".join(rows)
