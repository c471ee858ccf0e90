"""Every timeline event type is in TIMELINE_TYPES, and the dashboard's live timeline listens for each:
an event type it does not name never reaches an open run page (signals and continuations did not)."""

from __future__ import annotations

import re
from pathlib import Path

from runtime.timeline import DERIVED_TYPES, TIMELINE_TYPES

ROOT = Path(__file__).resolve().parents[2]


def written_types() -> set[str]:
    """The types the scripts write (add_event with a literal type) and the handler's context writes."""
    lua = {m for path in (ROOT / "runtime" / "lua").rglob("*.lua")
           for m in re.findall(r"add_event\(pfx, [^,]+, '([a-z_]+)'", path.read_text())}
    python = {m for path in (ROOT / "runtime").glob("*.py")
              for m in re.findall(r"(?:_events\.append\(|event = )\(\"([a-z_]+)\"", path.read_text())}
    assert {"status", "signal", "token", "step"} <= lua and {"log", "progress", "continued"} <= python, (lua, python)
    return lua | python


def test_every_type_written_is_a_timeline_type() -> None:
    assert written_types() | DERIVED_TYPES <= TIMELINE_TYPES, written_types() - TIMELINE_TYPES


def test_the_dashboard_listens_for_every_timeline_type() -> None:
    # Given the names the run page's live timeline listens for
    source = (ROOT / "runtime" / "api" / "ui" / "page_run.js").read_text()
    listed = re.search(r"const EVENT_TYPES = \[(.*?)\];", source, re.S)
    assert listed is not None
    names = set(re.findall(r'"([a-z_]+)"', listed[1]))
    # Then they are every timeline type, and "message" (the name an event of any other type is sent under)
    assert names == TIMELINE_TYPES | {"message"}, names ^ (TIMELINE_TYPES | {"message"})
