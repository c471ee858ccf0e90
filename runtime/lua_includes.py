"""Lua includes generated from Python definitions, so Python and Lua share one source.

``python -m runtime.lua_includes`` writes them; a test fails when a committed
include differs from what this module generates.
"""

from __future__ import annotations

from pathlib import Path

from .key_schema import families
from .keys import LEASED_ANCHOR, LEASED_ANCHOR_SCORE, LEASED_RANGE
from .script_replies import CLAIM_FIELDS
from .statuses import LIVE, RETENTION_MARGIN_MS, TERMINAL
from .submission import DEFAULT_BACKOFF, RECORD_DEFAULTS, RunSpec

__all__ = ["GENERATED", "backoff_lua", "claim_reply_lua", "keys_lua", "record_defaults_lua", "retention_lua",
           "run_spec_lua", "statuses_lua"]

INCLUDES = Path(__file__).parent / "lua" / "includes"


def _positions(source: str, meaning: str, table: str, fields: tuple[str, ...]) -> str:
    """An include naming the 1-based position of each field of a Python definition."""
    pairs = ",\n".join(f"  {name} = {i}" for i, name in enumerate(fields, start=1))
    return (
        f"-- Generated from {source} by `python -m runtime.lua_includes`: do not edit.\n"
        f"-- {meaning}\n"
        f"local {table} = {{\n{pairs},\n}}\n"
    )


def run_spec_lua() -> str:
    """The include naming each RunSpec field's position in the array runs_create gets per run,
    and the metatable through which the fields an array leaves out (its trailing empty ones)
    read as empty."""
    return _positions("RunSpec (runtime/submission.py)",
                      "The position of each field in the JSON array runs_create receives for one run.",
                      "S", RunSpec._fields) + (
        "-- The array stops at its last non-empty field: the fields it leaves out read as empty\n"
        "-- through this metatable (cheaper for Redis than decoding them, or filling them in).\n"
        f"local S_EMPTY = {{__index = {{}}}}\nfor i = 1, {len(RunSpec._fields)} do S_EMPTY.__index[i] = '' end\n")


def statuses_lua() -> str:
    """The include with the live and terminal status sets of runtime/statuses.py."""
    def table(name: str, statuses: tuple[str, ...]) -> str:
        return f"local {name} = {{{', '.join(f'{s} = true' for s in statuses)}}}\n"
    return (
        "-- Generated from runtime/statuses.py by `python -m runtime.lua_includes`: do not edit.\n"
        "-- A run in a LIVE status may still run; a TERMINAL one is finished for good.\n"
        + table("LIVE", tuple(str(s) for s in LIVE)) + table("TERMINAL", tuple(str(s) for s in TERMINAL))
    )


def retention_lua() -> str:
    """The include with how long a finished run's keys outlive its retention (runtime/statuses.py)."""
    return (
        "-- Generated from runtime/statuses.py by `python -m runtime.lua_includes`: do not edit.\n"
        "-- A finished run's keys expire RETENTION_MARGIN_MS after its retention, so the trim that\n"
        "-- ends the retention still finds its record (and its project).\n"
        f"local RETENTION_MARGIN_MS = {RETENTION_MARGIN_MS}\n"
    )


def claim_reply_lua() -> str:
    """The include naming the position of each field of a claimed run in a claim reply."""
    return _positions("CLAIM_FIELDS (runtime/script_replies.py)",
                      "A claimed run is CLAIMED_SIZE consecutive values of a claim reply or hand-off push.",
                      "CLAIMED", CLAIM_FIELDS) + f"local CLAIMED_SIZE = {len(CLAIM_FIELDS)}\n"


def keys_lua() -> str:
    """The include building each partition key from the prefix ``P``, with runtime/keys.py's templates."""
    functions = "\n".join(f.lua() for f in families() if f.scope == "partition")
    return (
        "-- Generated from Partition (runtime/keys.py) by `python -m runtime.lua_includes`: do not edit.\n"
        "-- Every key a script touches is built here from the partition prefix P (ARGV[1]), so all\n"
        "-- carry the partition's hash tag and live in the slot KEYS[1] pins.\n"
        f"local K = {{}}\n{functions}\n"
        "-- The leased set's member that keeps it skiplist-encoded, its score, and the score bounds of\n"
        "-- the leases beside it (runtime/keys.py).\n"
        f"local LEASED_ANCHOR, LEASED_ANCHOR_SCORE = '{LEASED_ANCHOR}', '{LEASED_ANCHOR_SCORE}'\n"
        f"local LEASED_FROM, LEASED_TO = '{LEASED_RANGE[0]}', '{LEASED_RANGE[1]}'\n"
    )


def backoff_lua() -> str:
    """The include naming the retry backoff of a run whose record stores none (runtime/submission.py)."""
    return (
        "-- Generated from DEFAULT_BACKOFF (runtime/submission.py) by `python -m runtime.lua_includes`: do not edit.\n"
        "-- A run created with the default backoff stores none (a record field less); this is it.\n"
        f"local DEFAULT_BACKOFF = '{DEFAULT_BACKOFF.encoded}'\n"
    )


def record_defaults_lua() -> str:
    """The include naming what a run record means by the fields it leaves out (runtime/submission.py)."""
    values = ", ".join(f"{name} = {value!r}" if isinstance(value, str) else f"{name} = {value}"
                       for name, value in RECORD_DEFAULTS._asdict().items())
    return (
        "-- Generated from RECORD_DEFAULTS (runtime/submission.py) by `python -m runtime.lua_includes`: do not edit.\n"
        "-- runs_create leaves a field equal to its default out of the record; readers take it from here.\n"
        f"local RECORD_DEFAULT = {{{values}}}\n"
    )


#: include file name -> its generator
GENERATED = {
    "backoff.lua": backoff_lua, "claim_reply.lua": claim_reply_lua, "keys.lua": keys_lua,
    "record_defaults.lua": record_defaults_lua, "run_spec.lua": run_spec_lua, "retention.lua": retention_lua,
    "statuses.lua": statuses_lua,
}


if __name__ == "__main__":
    for name, generate in GENERATED.items():
        (INCLUDES / name).write_text(generate())
        print(f"wrote {INCLUDES / name}")
