"""Messages to a running run: signals it waits for, and the state it publishes for queries.

Signals (Temporal's signals, DBOS ``send``/``recv``, Trigger.dev input streams):
``await app.signal(run_id, name, data)`` delivers ``data`` to the run's
``await ctx.wait_for_signal(name)``, a durable wait like ``wait_for_event``:
the attempt ends, the slot is freed, and the run is queued again when the
signal arrives, replaying its completed steps. Unlike an event, a signal is
addressed to one run and is never lost or shared: one sent before the handler
waits is kept in the run's buffer (at most ``signal_buffer_max``), and each
wait for a name takes the oldest signal of that name, so signals are delivered
in order, each once. Delivery is one Lua call (signal_send.lua, or settle when
the wait begins), in the run's partition.

Queries: ``await ctx.set_state(value)`` stores a JSON value (fenced by the
lease token, like every handler write) that ``await app.query(run_id)`` reads at
once: the latest published state, while the run executes, waits or after it
finished (until the run expires).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from .errors import LeaseLost, RunNotFound, SubmissionError, WaitTimeout, raise_for_status
from .ids import NAME_RE
from .json_values import encode, refusal
from .limits import json_size, stored_json

if TYPE_CHECKING:
    from .app import Baton
    from .context import RunContext
    from .step_positions import Position

__all__ = ["TAKEN_AT_ONCE", "data_json", "keyed_wait", "query_state", "send_signal", "set_state", "wait_for_signal"]

def data_json(what: str, data: Any, max_bytes: int) -> str:
    """``data`` as the JSON text a message carries, within ``max_bytes``; SubmissionError otherwise."""
    try:
        text = encode(data)
    except TypeError as exc:
        raise SubmissionError("bad_data", refusal(what, exc)) from None
    if json_size(text) > max_bytes:
        raise SubmissionError("too_large", f"{what} is {json_size(text)} bytes of JSON; the limit is {max_bytes} "
                              "(max_input_bytes)")
    return text


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SubmissionError("bad_signal_name", "a signal name is 1-100 letters, digits, '_', '.', ':' or '-'")
    return name


async def send_signal(app: Baton, run_id: str, name: str, data: Any = None) -> bool:
    """Send signal ``name`` with ``data`` to one run; True when it was waiting for it (and resumes now),
    False when it was kept for the run's next ``wait_for_signal(name)``.

    RunNotFound for an unknown run, RunAlreadyFinished for a finished one, SignalBufferFull when the run
    already holds ``signal_buffer_max`` signals, SubmissionError for a bad name or data.
    """
    _check_name(name)
    text = data_json("signal data", data, app.settings.max_input_bytes)
    code = await app.scripts.send_signal(run_id, name, text, app.settings.signal_buffer_max)
    raise_for_status(code, run_id)
    return code == 1


async def query_state(app: Baton, run_id: str) -> dict[str, Any] | None:
    """The state the run's handler last published (``{"state": ..., "updated_at": ms}``), or None when it
    published none; RunNotFound for an unknown run."""
    p = app.keys.partition_of_run(run_id)
    pipe = app.redis.pipeline(transaction=False)
    pipe.exists(p.run(run_id))
    pipe.get(p.query_state(run_id))
    exists, raw = await pipe.execute()
    if not exists:
        raise RunNotFound(f"run {run_id} not found")
    return orjson.loads(raw) if raw else None


# -- handler side (RunContext delegates here) ------------------------------------

#: waits whose message may have arrived before they begin (kept for them): a beginning wait takes it in the
#: running attempt instead of ending it
TAKEN_AT_ONCE = ("event", "signal", "token")


async def keyed_wait(ctx: RunContext, kind: str, key: str, deadline_ms: int | None, what: str,
                     step: str | None = None, position: Position | None = None) -> Any:
    """A durable wait of ``ctx``'s run for one ``kind`` (event, signal, token) and ``key``: the recorded data
    once delivered; WaitTimeout once recorded timed out; otherwise the attempt ends in the wait (Suspend),
    which settle delivers at once when the message already arrived. The wait is a step named
    ``<step>#<position>`` (``__wait_<kind>`` by default; ``position``: the one the caller reserved before
    its own awaits); ``deadline_ms`` counts only when it begins."""
    from .context import Suspend

    step, index, _tag, record = ctx._begin_auto(step or f"__wait_{kind}", position)
    if record is None and kind in TAKEN_AT_ONCE:
        record = await _take(ctx, kind, key, step, index)
    if record is not None:
        status = record.get("status")
        if status == "completed":
            return record.get("output")
        if status == "timed_out":
            raise WaitTimeout(what)
        deadline_ms = record["output"].get("deadline")
    else:
        await ctx._record(step, index, {"name": step, "index": index, "status": "waiting",
                                        "output": {"key": key, "deadline": deadline_ms}, "error": None,
                                        "started_at": ctx.now_ms(), "completed_at": None})
    raise ctx.endings.note(Suspend({"kind": kind, "key": key, "deadline": deadline_ms, "step": step, "index": index}))


async def _take(ctx: RunContext, kind: str, key: str, step: str, index: int) -> dict[str, Any] | None:
    """The wait's step record when what it waits for already arrived (taken by message_take.lua in this
    attempt, which goes on), else None."""
    from .context import Suspend

    await ctx.flush()  # the run's timeline keeps its order: what the handler wrote before the wait first
    at = list(ctx._position_of(step))
    taken = await ctx._on_lease(lambda: ctx._app.scripts.take_message(ctx.run_id, ctx._token, kind, key, step, index,
                                                                      encode(at)),
                                f"beginning the {kind} wait {step!r}")
    if taken == -1:
        raise LeaseLost(f"run {ctx.run_id}: lease lost; {kind} wait not begun")
    if not isinstance(taken, tuple):
        return None
    status, data, paused = taken
    now = ctx.now_ms()
    record = {"name": step, "index": index, "status": status, "output": orjson.loads(data), "error": None,
              "started_at": now, "completed_at": now, "at": at}
    ctx._steps[step] = ctx._by_index[index] = record
    if paused:  # a step boundary, where a requested pause takes effect (as RunContext._record)
        raise ctx.endings.note(Suspend({"kind": "paused", "step": step, "index": index}))
    return record


async def wait_for_signal(ctx: RunContext, name: str, timeout: float | None = None) -> Any:
    """See RunContext.wait_for_signal."""
    _check_name(name)
    deadline = ctx.deadline_after(timeout, "timeout") if timeout is not None else None
    return await keyed_wait(ctx, "signal", name, deadline, f"no signal {name!r} within {timeout}s")


async def set_state(ctx: RunContext, value: Any) -> None:
    """See RunContext.set_state."""
    text = stored_json("the run's state", value, ctx._app.settings, "max_checkpoint_bytes")
    if ctx.replaying:
        # published when that code first ran: stored again, the state went back to an earlier one
        # until the replay caught up (checked all the same: a bad value fails every attempt alike)
        return
    if await ctx._on_lease(lambda: ctx._app.scripts.set_state(ctx.run_id, ctx._token, text), "storing its state") == -1:
        raise LeaseLost(f"run {ctx.run_id}: lease lost; state not stored")
