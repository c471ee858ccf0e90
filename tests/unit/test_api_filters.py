"""Query filters of the HTTP API: an empty one is refused, never taken for no filter at all."""

from __future__ import annotations

from runtime.api.routes import ROUTES


def test_every_list_filter_needs_at_least_one_value() -> None:
    # an empty array (`status=`) passed its schema and filtered nothing: every run was listed, where a
    # misspelt filter must never list everything (README, Errors)
    unbounded = [f"{r.method} {r.path} {p.name}" for r in ROUTES for p in r.params
                 if p.schema.get("type") == "array" and p.schema.get("minItems", 0) < 1]
    assert unbounded == []
