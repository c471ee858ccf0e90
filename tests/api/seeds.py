"""What the seed-client tests share: each seed's schema or field list, transcribed from
/work/shared/seeds into tests/api/schemas, an exact example check, and runs in every status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker

from tests.api.conftest import ApiNode

SCHEMAS = Path(__file__).parent / "schemas"
FORMATS = FormatChecker()


def _load(name: str) -> Any:
    return json.loads((SCHEMAS / name).read_text())


#: seed 004 (Trigger.dev's run JSON Schema) and 001 (its run structure: the field list)
TRIGGER = Draft7Validator(_load("trigger-dev-run.schema.json"), format_checker=FORMATS)
TRIGGER_STRUCTURE = _load("trigger-dev-run-structure.json")
#: seed 002 (Hatchet's V1WorkflowRun JSON Schema)
HATCHET = Draft202012Validator(_load("hatchet-v1-workflow-run.schema.json"), format_checker=FORMATS)
#: seed 000 (durably's client types: ClientRun, StepRecord, LogEntry), every interface exact
DURABLY = _load("durably-client-run.schema.json")
DURABLY_RUN = Draft202012Validator(DURABLY, format_checker=FORMATS)
DURABLY_STEP = Draft202012Validator({"$defs": DURABLY["$defs"], "$ref": "#/$defs/StepRecord"},
                                    format_checker=FORMATS)
DURABLY_LOG = Draft202012Validator({"$defs": DURABLY["$defs"], "$ref": "#/$defs/LogEntry"}, format_checker=FORMATS)
#: seed 003 (Strait's HTTP API): its example run and the other example objects
STRAIT_RUN = _load("strait-run.example.json")
STRAIT_OBJECTS = _load("strait-objects.example.json")
#: seed 003's status list (List runs, query parameter "status")
STRAIT_STATUSES = ("delayed", "queued", "dequeued", "executing", "waiting", "completed", "failed", "timed_out",
                   "crashed", "system_failed", "canceled", "expired", "dead_letter")
#: seed 003's triggered_by list (List runs, query parameter "triggered_by")
STRAIT_TRIGGERS = ("manual", "cron", "spawn", "workflow", "retry", "event")
#: The Strait run fields that may be null: what a run may not have (yet): times not reached, an error,
#: a parent, keys and overrides not given, trace phases not run. Identity, counters, flags, maps and the
#: payload never are.
STRAIT_RUN_NULLABLE = frozenset({
    "result", "error", "scheduled_at", "started_at", "finished_at", "heartbeat_at", "next_retry_at", "expires_at",
    "parent_run_id", "idempotency_key", "job_version", "workflow_step_run_id", "max_attempts_override",
    "timeout_secs_override", "retry_backoff", "retry_initial_delay_secs", "retry_max_delay_secs",
    "continuation_of", "job_version_id", "batch_id", "concurrency_key",
    *(f"execution_trace.{k}" for k in STRAIT_RUN["execution_trace"]),
})
#: Strait run fields that are date-times
STRAIT_TIMES = ("scheduled_at", "started_at", "finished_at", "heartbeat_at", "next_retry_at", "expires_at",
                "created_at")


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
            type(None): "null"}[type(value)]


def like_example(obj: Any, example: Any, nullable: frozenset[str] = frozenset(), where: str = "") -> None:
    """``obj`` has exactly the example's fields, each of the example's JSON type: ``{}`` is an object,
    ``0`` an integer, a ``property1/property2`` object a map of strings; null only at the dotted paths
    in ``nullable`` (items of a list are checked against the example's first item)."""
    assert _kind(obj) == _kind(example), (where, obj)
    if isinstance(example, list):
        for item in obj:
            like_example(item, example[0], nullable, f"{where}[]")
        return
    if not isinstance(example, dict) or not example:  # {}: any object
        return
    if set(example) == {"property1", "property2"}:
        assert all(isinstance(v, str) for v in obj.values()), (where, obj)
        return
    assert set(obj) == set(example), (where, set(obj) ^ set(example))
    for name, sample in example.items():
        path = f"{where}.{name}" if where else name
        if obj[name] is None:
            assert path in nullable, (path, "is null")
            continue
        like_example(obj[name], sample, nullable, path)


def check_strait_run(run: dict[str, Any]) -> None:
    """A run exactly as seed 003's run object: fields, types, nulls, its status and trigger vocabularies."""
    like_example(run, STRAIT_RUN, STRAIT_RUN_NULLABLE)
    assert run["status"] in STRAIT_STATUSES and run["triggered_by"] in STRAIT_TRIGGERS, run
    for name in STRAIT_TIMES:
        assert run[name] is None or FORMATS.conforms(run[name], "date-time"), (name, run[name])


#: where each kind of run ends up: the native status of each run runs_in_every_status makes
NATIVE = {"completed": "completed", "dead_letter": "dead_letter", "failed": "failed", "delayed": "delayed",
          "executing": "executing", "waiting": "waiting", "paused": "paused", "canceled": "canceled",
          "child": "executing", "queued": "queued", "expired": "expired", "retrying": "delayed"}


async def runs_in_every_status(api: ApiNode) -> dict[str, str]:
    """A run id per interesting state (NATIVE), all in project alpha: every native status, a child, a run
    waiting for its retry."""
    ids = {
        "completed": await api.trigger("steps", {"n": 1, "gate": "views"}, labels={"team": "x"},
                                       tags=["a", "b"], metadata={"n": 1, "nested": {"k": [1]}}, version="7",
                                       max_attempts=2),
        "dead_letter": await api.trigger("boom", [1, 2]),
        "failed": await api.trigger("fatal", "text input"),
        "delayed": await api.trigger("echo", None, delay=60),
        "executing": await api.trigger("gated", {"gate": "views-hold"}),
        "waiting": await api.trigger("parent", {"gate": "views-children"}),
        "paused": await api.trigger("echo", 5, delay=60),
        "canceled": await api.trigger("echo", 6, delay=60),
        "expired": await api.trigger("echo", 7, delay=0.3, ttl=0.1),
        "retrying": await api.trigger("retrying", {}),
    }
    holder = await api.trigger("single", {"gate": "views-single"})
    api.gates.open("views-0")
    await api.call("POST", f"/v1/runs/{ids['paused']}/pause", params={"view": "native"})
    await api.call("DELETE", f"/v1/runs/{ids['canceled']}", params={"view": "native"})
    await api.wait_status(holder, "executing")
    ids["queued"] = await api.trigger("single", {"gate": "views-single"})
    for name in ("completed", "dead_letter", "failed", "expired"):
        await api.wait_status(ids[name])
    for name in ("executing", "waiting", "retrying", "queued"):
        await api.wait_status(ids[name], NATIVE[name])
    status, children = await api.call("GET", f"/v1/runs/{ids['waiting']}/children", params={"view": "native"})
    assert status == 200, children
    ids["child"] = children["data"][0]["id"]
    await api.wait_status(ids["child"], "executing")
    for name, run_id in ids.items():  # nothing moved on meanwhile
        assert (await api.run(run_id, view="native"))["status"] == NATIVE[name], name
    return ids


def release(api: ApiNode) -> None:
    """Let the runs runs_in_every_status holds go on."""
    for gate in ("views-hold", "views-children", "views-single"):
        api.gates.open(gate)


async def every_page(api: ApiNode, view: str, limit: int = 3) -> list[dict[str, Any]]:
    """Every run of the project in ``view``, page by page (next_cursor until none); no page over limit."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"view": view, "limit": limit, **({"cursor": cursor} if cursor else {})}
        status, page = await api.call("GET", "/v1/runs", params=params)
        assert status == 200 and len(page["data"]) <= limit, page
        out.extend(page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            return out


async def act_on_runs(api: ApiNode, view: str, ids: dict[str, str]) -> list[dict[str, Any]]:
    """Every action on runs of runs_in_every_status, called with the ids as ``view`` shows them (``ids``):
    pause, resume, reschedule, debug mode, cancel, replay, dead-letter replay, restart, bulk replay.
    Returns every run the answers carry, in ``view``."""
    runs = []
    for method, path, body in (
        ("POST", f"/v1/runs/{ids['queued']}/pause", None), ("POST", f"/v1/runs/{ids['queued']}/resume", None),
        ("POST", f"/v1/runs/{ids['paused']}/reschedule", {"delay": 120}),
        ("POST", f"/v1/runs/{ids['completed']}/debug", {"debug_mode": True}),
        ("DELETE", f"/v1/runs/{ids['delayed']}", None),
    ):
        status, answer = await api.call(method, path, json=body, params={"view": view})
        assert status == 200 and set(answer) == {"id", "result", "run"}, (path, answer)
        runs.append(answer["run"])
    for path in (f"/v1/runs/{ids['completed']}/replay", f"/v1/runs/{ids['dead_letter']}/dlq-replay",
                 f"/v1/runs/{ids['failed']}/restart"):
        status, answer = await api.call("POST", path, json={} if path.endswith("restart") else None,
                                        params={"view": view})
        assert status == 201, (path, answer)
        runs.append(answer)
    status, answer = await api.call("POST", "/v1/runs/bulk-replay", json={"run_ids": [ids["completed"]]},
                                    params={"view": view})
    assert status == 200 and answer["count"] == 1, answer
    return runs + answer["replayed"]
