"""Completion hooks: jobs that start, as runs of their own, when a run of another job finishes.

``@app.job(on_success="notify", on_failure="page", on_dead_letter="archive")`` names jobs. What each fires
on (the final outcome only, as Celery's ``on_failure``/``on_success`` and Hatchet's on-failure step do;
an attempt that will be retried fires nothing):

- ``on_success``: the run completed;
- ``on_failure``: the run failed for good: ``failed`` (PermanentFailure, not retried) or ``dead_letter``
  (attempts exhausted);
- ``on_dead_letter``: the run was dead-lettered (a dead-lettered run fires ``on_failure`` too).

Canceled and expired runs fire no hook (webhooks report them). A hook run is an ordinary run of its job:
durable, retried by its own job's policy, visible in the API, and its input is :func:`hook_input`. Its id
is derived from the source run's id and the hook's kind (:func:`hook_run_id`) and run creation is
idempotent on the id, so an outcome processed twice (a notifier that died before acknowledging it) still
makes exactly one hook run. A hook run does not fire hooks of its own (no chains or loops); webhooks
report it like any run.

The outcome reaches the notifier through the partition's outbox (see runtime/notify.py); which runs
write to it is decided here, when runs are created (:func:`mark_notify`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from typing import Any

import orjson

from .ids import RUN_ID_RE
from .jobs import JobOptions
from .statuses import RunStatus
from .submission import RunSpec

__all__ = ["FIRES_ON", "HOOK_KINDS", "hook_input", "hook_run_id", "hooks_for", "mark_notify", "spec_project"]

HOOK_KINDS = ("on_success", "on_failure", "on_dead_letter")
#: the terminal statuses each hook fires on
FIRES_ON: Mapping[str, frozenset[str]] = {
    "on_success": frozenset({RunStatus.COMPLETED}),
    "on_failure": frozenset({RunStatus.FAILED, RunStatus.DEAD_LETTER}),
    "on_dead_letter": frozenset({RunStatus.DEAD_LETTER}),
}
#: the record field that marks a run whose outcome goes to the outbox (read by make_terminal in Lua)
NOTIFY_FIELD = "notify"
_NOTIFY_EXTRA = '{"' + NOTIFY_FIELD + '":"1"'


def hooks_for(options: JobOptions | None, status: str) -> list[tuple[str, str]]:
    """The (kind, job) hooks a run of a job with these options fires on finishing with ``status``."""
    if options is None:
        return []
    return [(kind, getattr(options, kind)) for kind in HOOK_KINDS
            if getattr(options, kind) and status in FIRES_ON[kind]]


def hook_run_id(source_run_id: str, kind: str) -> str:
    """The id of the hook run a source run's outcome starts: ``<source>.<kind>``, or a digest of the
    source id when that would be longer than a run id may be."""
    candidate = f"{source_run_id}.{kind}"
    if RUN_ID_RE.match(candidate):
        return candidate
    return f"hook.{hashlib.sha256(source_run_id.encode()).hexdigest()[:40]}.{kind}"


def hook_input(source_run_id: str, job: str, status: str, kind: str, attempt: int, output: Any,
               error: Any) -> dict[str, Any]:
    """What a hook run receives: the source run, its job, final status and attempt number, its output
    (completed) or its last error (``{message, type, stack}``), and which hook this is."""
    return {"source_run_id": source_run_id, "job": job, "status": status, "hook": kind, "attempt": attempt,
            "output": output, "error": error}


def spec_project(spec: RunSpec) -> str:
    """The project a run to be created belongs to (``default`` unless its extra fields name one)."""
    if not spec.extra_json or '"project"' not in spec.extra_json:
        return "default"
    return str(orjson.loads(spec.extra_json).get("project") or "default")


def mark_notify(specs: list[RunSpec], lookup: Callable[[str], JobOptions | None],
                webhook_projects: Collection[str]) -> list[RunSpec]:
    """Mark the runs whose outcome must reach the outbox: their job has hooks, or their project has
    webhooks. Unmarked runs cost the finishing scripts nothing more."""
    out = specs
    for i, spec in enumerate(specs):
        options = lookup(spec.job)
        if (options is not None and options.hooked) or (webhook_projects and spec_project(spec) in webhook_projects):
            if out is specs:
                out = list(specs)
            extra = spec.extra_json
            marked = _NOTIFY_EXTRA + "}" if extra in ("", "{}") else _NOTIFY_EXTRA + "," + extra[1:]
            out[i] = spec._replace(extra_json=marked)
    return out
