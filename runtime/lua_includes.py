"""Lua includes generated from Python definitions, so Python and Lua share one source.

``python -m runtime.lua_includes`` writes them; a test fails when a committed
include differs from what this module generates.
"""

from __future__ import annotations

from pathlib import Path

from .submission import RunSpec

__all__ = ["GENERATED", "run_spec_lua"]

INCLUDES = Path(__file__).parent / "lua" / "includes"


def run_spec_lua() -> str:
    """The include naming each RunSpec field's position in the array runs_create gets per run."""
    pairs = ",\n".join(f"  {name} = {i}" for i, name in enumerate(RunSpec._fields, start=1))
    return (
        "-- Generated from RunSpec (runtime/submission.py) by `python -m runtime.lua_includes`: do not edit.\n"
        "-- The position of each field in the JSON array runs_create receives for one run.\n"
        f"local S = {{\n{pairs},\n}}\n"
    )


#: include file name -> its generator
GENERATED = {"run_spec.lua": run_spec_lua}


if __name__ == "__main__":
    for name, generate in GENERATED.items():
        (INCLUDES / name).write_text(generate())
        print(f"wrote {INCLUDES / name}")
