"""Every timeline event type is in TIMELINE_TYPES, the dashboard's live timeline listens for each (an event
type it does not name never reaches an open run page: signals and continuations did not), and each says in words
what its data says (a timeline that read "rescheduled" said not to when)."""

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


def test_each_event_says_what_its_data_says_past_its_type() -> None:
    from runtime.api.views import event_view

    def said(kind: str, data: object) -> str:
        return str(event_view("r1", {"id": "1-0", "type": kind, "data": data, "ts": "1"})["message"])

    # the timeline read "rescheduled" and "debug_mode" alone: not to when, nor on or off
    assert said("rescheduled", {"scheduled_at": 1796620000000}) == "rescheduled to 2026-12-07T05:06:40.000Z"
    assert said("debug_mode", {"debug_mode": True}) == "debug_mode on"
    assert said("debug_mode", {"debug_mode": False}) == "debug_mode off"
    assert said("pause_requested", {"status": "executing"}) == "pause_requested while executing"
    assert said("pause_withdrawn", {"status": "queued"}) == "pause_withdrawn while queued"
    assert said("continued", {"run_id": "r2"}) == "continued as r2"
    assert said("token", {"id": "tok_1", "status": "completed"}) == "token tok_1 completed"
    assert said("signal", {"name": "approve", "delivered": True}) == "signal approve delivered"
    assert said("signal", {"name": "approve", "delivered": False}) == "signal approve buffered"
    # data without the detail (or none) leaves the type alone, never a broken sentence
    for kind in ("rescheduled", "debug_mode", "pause_requested", "continued", "token", "signal"):
        assert said(kind, {}) == kind and said(kind, "not an object") == kind
    # and every type written is worded, or known to carry nothing more to say
    unworded = {kind for kind in written_types()
                if said(kind, {"scheduled_at": 1, "debug_mode": True, "status": "x", "run_id": "r", "id": "t",
                               "name": "n", "delivered": True, "number": 1, "sequence": 1, "current": 1,
                               "total": 2, "message": "m", "level": "info"}) == kind}
    assert unworded == {"idempotency_reset", "metadata"}, unworded
