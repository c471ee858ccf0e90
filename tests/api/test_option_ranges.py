"""The HTTP API refuses a numeric option outside its range as every other door does: the same check
(runtime/ranges.py), so the same reason (``bad_<option>``) and the same message naming the range."""

from __future__ import annotations

from typing import Any

from runtime.api.schemas import TRIGGER_OPTIONS
from runtime.errors import SubmissionError
from runtime.ranges import RANGE_KEYWORD, RANGES, check
from tests.api.conftest import ApiNode


def _ranged_bodies() -> list[tuple[str, Any]]:
    """(range name, a function making a trigger body with that option set to a value) for every ranged
    option of a trigger body, nested ones included: read from the schema, so a new option is covered."""
    out: list[tuple[str, Any]] = []
    for field, schema in TRIGGER_OPTIONS.items():
        if RANGE_KEYWORD in schema:
            out.append((str(schema[RANGE_KEYWORD]), lambda v, f=field: {f: v}))
        for inner, sub in schema.get("properties", {}).items():
            if RANGE_KEYWORD in sub:  # (debounce: its key and window are required beside it)
                out.append((str(sub[RANGE_KEYWORD]),
                            lambda v, f=field, i=inner: {f: {"key": "k", "window": 1, i: v}}))
    return out


def _refusal(name: str, value: object) -> str:
    try:
        check(name, value)
    except SubmissionError as exc:
        return str(exc)
    raise AssertionError(f"{name}: {value!r} is within its range")


async def test_every_ranged_option_is_refused_with_its_own_reason_and_range(api: ApiNode) -> None:
    bodies = _ranged_bodies()
    assert {name for name, _ in bodies} >= {"priority", "delay", "ttl", "timeout", "max_attempts",
                                            "debounce_window", "debounce_max", "prefer_wait"}
    for name, body in bodies:
        r = RANGES[name]
        for bad in (int(r.high) + 1, int(r.low) - 1, "soon"):
            # When the option is out of its range (or not a number), in a trigger and in a batch item
            status, err = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 1, **body(bad)})
            # Then the answer is app.trigger's error: bad_<option>, the message naming the range
            assert (status, err["code"], err["error"]) == (400, f"bad_{name}", _refusal(name, bad)), (name, bad)
            status, err = await api.call("POST", "/v1/runs/batch",
                                         json={"runs": [{"job": "echo", "input": 1, **body(bad)}]})
            assert (status, err["code"]) == (400, f"bad_{name}"), (name, bad, err)
    # And any other schema error is still the body's
    status, err = await api.call("POST", "/v1/jobs/echo/trigger", json={"input": 1, "queue": 5})
    assert (status, err["code"]) == (400, "invalid_body")
