"""Lua includes generated from Python definitions, so Python and Lua share one source.

``python -m runtime.lua_includes`` writes them; a test fails when a committed
include differs from what this module generates.
"""

from __future__ import annotations

from pathlib import Path

from .statuses import LIVE, TERMINAL
from .submission import RunSpec

__all__ = ["GENERATED", "run_spec_lua", "statuses_lua"]

INCLUDES = Path(__file__).parent / "lua" / "includes"


def run_spec_lua() -> str:
    """The include naming each RunSpec field's position in the array runs_create gets per run."""
    pairs = ",\n".join(f"  {name} = {i}" for i, name in enumerate(RunSpec._fields, start=1))
    return (
        "-- Generated from RunSpec (runtime/submission.py) by `python -m runtime.lua_includes`: do not edit.\n"
        "-- The position of each field in the JSON array runs_create receives for one run.\n"
        f"local S = {{\n{pairs},\n}}\n"
    )


def statuses_lua() -> str:
    """The include with the live and terminal status sets of runtime/statuses.py."""
    def table(name: str, statuses: tuple[str, ...]) -> str:
        return f"local {name} = {{{', '.join(f'{s} = true' for s in statuses)}}}\n"
    return (
        "-- Generated from runtime/statuses.py by `python -m runtime.lua_includes`: do not edit.\n"
        "-- A run in a LIVE status may still run; a TERMINAL one is finished for good.\n"
        + table("LIVE", tuple(str(s) for s in LIVE)) + table("TERMINAL", tuple(str(s) for s in TERMINAL))
    )


#: include file name -> its generator
GENERATED = {"run_spec.lua": run_spec_lua, "statuses.lua": statuses_lua}


if __name__ == "__main__":
    for name, generate in GENERATED.items():
        (INCLUDES / name).write_text(generate())
        print(f"wrote {INCLUDES / name}")
