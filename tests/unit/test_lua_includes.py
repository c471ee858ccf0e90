"""Lua includes generated from Python definitions are committed as generated (one source for both)."""

from __future__ import annotations

import re

from runtime.lua_includes import GENERATED, INCLUDES
from runtime.lua_source import LUA_DIR, load_source
from runtime.statuses import AttemptOutcome, RunStatus


def test_every_generated_include_is_current() -> None:
    for name, generate in GENERATED.items():
        assert (INCLUDES / name).read_text() == generate(), f"{name} is stale: python -m runtime.lua_includes"


def test_runs_create_reads_run_fields_by_name_only() -> None:
    source = load_source("runs_create")
    assert "local S = {" in source  # the generated positions are included
    assert "F[i" not in source  # no positional field access left


def test_every_status_the_lua_scripts_write_or_compare_is_defined_in_python() -> None:
    # statuses the scripts spell out (the sets live in the generated include) must be known names
    known = {s.value for s in RunStatus} | {o.value for o in AttemptOutcome}
    patterns = [r"\b(?:status|st) [=~]= '(\w+)'", r"'HSET'[^\n]*?'status', '(\w+)'",
                r"make_terminal\([^,]+, [^,]+, '(\w+)'"]
    found: dict[str, set[str]] = {}
    for path in sorted(LUA_DIR.rglob("*.lua")):
        text = path.read_text()
        for pattern in patterns:
            for word in re.findall(pattern, text):
                found.setdefault(word, set()).add(path.name)
    assert found, "no status literal found: the patterns no longer match the scripts"
    unknown = {word: files for word, files in found.items() if word not in known}
    assert not unknown, unknown
