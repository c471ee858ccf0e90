"""Query filters of the HTTP API: an empty one is refused, never taken for no filter at all, but where a
seed's own server reads it as none (Trigger.dev's)."""

from __future__ import annotations

from runtime.api.routes import ROUTES


def test_every_list_filter_needs_at_least_one_value() -> None:
    # an empty array (`status=`) passed its schema and filtered nothing: every run was listed, where a
    # misspelt filter must never list everything (README, Errors)
    unbounded = [f"{r.method} {r.path} {p.name}" for r in ROUTES for p in r.params
                 if p.schema.get("type") == "array" and p.schema.get("minItems", 0) < 1]
    assert unbounded == []


def test_only_trigger_dev_filters_read_an_empty_value_as_none() -> None:
    # Trigger.dev's server ignores an empty list filter and its SDK sends one (runs.list({tag: []}),
    # wait.listTokens({status: []}): an empty array is truthy in JavaScript); Baton's own routes and the other
    # seeds' refuse it
    lenient = {f"{r.method} {r.path} {p.name}" for r in ROUTES for p in r.params if p.empty_is_absent}
    run_lists = ("/api/v1/runs", "/api/v1/projects/{project_ref}/runs")
    assert lenient == {f"GET {path} filter[{name}]" for path in run_lists
                       for name in ("status", "taskIdentifier", "tag", "queue")} | {
        "GET /api/v1/projects/{project_ref}/runs filter[env]"} | {
        f"GET /api/v1/waitpoints/tokens filter[{name}]" for name in ("status", "tags")}
