"""Lua includes generated from Python definitions are committed as generated (one source for both)."""

from __future__ import annotations

from runtime.lua_includes import GENERATED, INCLUDES
from runtime.scripts import load_source


def test_every_generated_include_is_current() -> None:
    for name, generate in GENERATED.items():
        assert (INCLUDES / name).read_text() == generate(), f"{name} is stale: python -m runtime.lua_includes"


def test_runs_create_reads_run_fields_by_name_only() -> None:
    source = load_source("runs_create")
    assert "local S = {" in source  # the generated positions are included
    assert "F[i" not in source  # no positional field access left
