"""tasks.trigger of @trigger.dev/sdk, read as a Baton trigger.

The SDK posts ``{payload, options}`` to ``/api/v1/tasks/{task}/trigger``: the payload as JSON text
(``options.payloadType`` ``application/json``), the options in Trigger.dev's terms. Each option Baton
can honour becomes the Baton option of the same meaning. One that would change what the run does and
that Baton cannot honour answers 400 ``unsupported_parameter`` rather than being dropped. The ones that
only describe the request (the payload's size, how the idempotency key was made) are not needed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..json_values import decode
from .errors import ApiError
from .handlers_jobs import trigger_one
from .handlers_trigger import seconds_of
from .routing import Req, json_response
from .views import TRIGGER_PREFIX

__all__ = ["NOT_A_TASK", "h_tapi_trigger", "trigger_item"]

#: options that describe the request, not the run: nothing to do with them
_INFORMATIVE = frozenset({"payloadType", "payloadSize", "idempotencyKeyOptions", "externalDeploymentId",
                          "metadataType"})
#: why the options of a trigger made inside a Trigger.dev task are refused
NOT_A_TASK = "a Baton run is not started from inside a Trigger.dev task: a handler starts children with ctx.trigger"
#: options Baton cannot honour, and why
_REFUSED = {
    "parentRunId": NOT_A_TASK, "resumeParentOnCompletion": NOT_A_TASK, "parentBatch": NOT_A_TASK,
    "dependentAttempt": NOT_A_TASK, "parentAttempt": NOT_A_TASK, "dependentBatch": NOT_A_TASK,
    "machine": "Baton has no machine presets", "region": "Baton has no regions",
    "concurrency": "a Baton job's concurrency is its own (max_concurrency), not the trigger's",
    "gates": "Baton has no queue gates", "bulkAction": "Baton has no bulk action of this kind",
    "bulkActionId": "Baton has no bulk action of this kind",
}
#: options whose value means what a Baton option's does, and that option (priority: both higher first,
#: Baton's an integer from -1000 to 1000; maxDuration: seconds, as Baton's timeout)
_SAME_MEANING = {"idempotencyKey": "idempotency_key", "metadata": "metadata", "maxAttempts": "max_attempts",
                 "maxDuration": "timeout", "priority": "priority", "concurrencyKey": "concurrency_key",
                 "lockToVersion": "version"}
#: the payload types the SDK sends (ioSerialization's stringifyIO): a string as text, any other value as
#: superjson, and JSON when superjson cannot write it (the value itself, not text)
_JSON, _SUPERJSON, _TEXT = "application/json", "application/super+json", "text/plain"


def _refuse(name: str, why: str) -> ApiError:
    return ApiError(400, "unsupported_parameter", f"options.{name} is not served: {why}")


def _bad(name: str, what: str) -> ApiError:
    return ApiError(400, "invalid_body", f"options.{name} must be {what}")


def _seconds(name: str, value: Any) -> int:
    """A Trigger.dev duration (``1h30m``) or a number of seconds, as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    seconds = seconds_of(value) if isinstance(value, str) else None
    if seconds is None:
        raise _bad(name, "a duration (e.g. 30s, 1h30m, 2d) or a number of seconds")
    return seconds


def _input(payload: Any, payload_type: Any) -> Any:
    """The run's input from the payload as the SDK sends it. Superjson's JSON part is the input: its
    values JSON has no type for arrive as superjson writes them (a Date as ISO-8601 text, a BigInt as
    text, a Map or Set as an array, undefined as null)."""
    if payload is None:
        return None
    if payload_type == _TEXT or (payload_type is None and not isinstance(payload, str)):
        return payload
    if payload_type not in (None, _JSON, _SUPERJSON):
        raise _refuse("payloadType", f"{str(payload_type)[:60]} payloads are not read (JSON, superjson and text are; "
                                     "a payload offloaded to object storage is not)")
    if not isinstance(payload, str):
        return payload  # (JSON the SDK could not write as superjson: the value itself)
    try:
        value = decode(payload)
    except ValueError as exc:
        raise ApiError(400, "invalid_body", f"payload {exc}") from None
    if payload_type == _SUPERJSON:
        if not isinstance(value, dict) or "json" not in value:
            raise ApiError(400, "invalid_body", "payload: superjson text is an object with a json field")
        return value["json"]
    return value


def trigger_item(body: dict[str, Any]) -> dict[str, Any]:
    """The Baton trigger item (its options; no job) of a TriggerTaskRequestBody."""
    options: dict[str, Any] = {k: v for k, v in (body.get("options") or {}).items() if v is not None}
    item: dict[str, Any] = {"input": _input(body.get("payload"), options.get("payloadType"))}
    for name, value in options.items():
        if name in _INFORMATIVE:
            continue
        if name in _REFUSED:
            raise _refuse(name, _REFUSED[name])
        if name == "test":
            if value:
                raise _refuse(name, "Baton has no test runs")
        elif name == "delay":
            seconds = seconds_of(value) if isinstance(value, str) else None
            if seconds is not None:
                item["delay"] = seconds
            else:
                item["run_at"] = value  # (a date: the SDK sends a Date as ISO-8601 text; Baton reads it, or says why)
        elif name == "ttl":
            seconds = _seconds(name, value)
            if seconds:  # (0: no time to live, as in Trigger.dev)
                item["ttl"] = seconds
        elif name in _SAME_MEANING:
            item[_SAME_MEANING[name]] = value  # (each checked where any trigger's is: bad_<option>)
        elif name == "idempotencyKeyTTL":
            item["idempotency_ttl"] = _seconds(name, value)
        elif name == "tags":
            item["tags"] = [value] if isinstance(value, str) else value
        elif name == "queue":
            queue = value.get("name") if isinstance(value, dict) else None
            if not isinstance(queue, str):
                raise _bad(name, "{name: <a Baton queue>}")
            if queue.startswith("task/"):
                raise _refuse(name, "a task's own queue (task/NAME) does not exist in Baton: name a Baton queue")
            item["queue"] = queue
        elif name == "debounce":
            item["debounce"] = _debounce(value)
        else:
            raise _refuse(name, "not a Trigger.dev trigger option Baton knows")
    return item


def _debounce(value: Any) -> dict[str, Any]:
    """Trigger.dev's debounce {key, delay, mode, maxDelay} as Baton's. Both extend the run's delay with
    each trigger; Trigger.dev's default mode (leading) then runs the first trigger's payload, which no
    Baton mode does (Baton's leading runs the first at once), so only trailing is served."""
    if not isinstance(value, dict) or not isinstance(value.get("key"), str):
        raise _bad("debounce", "{key, delay, mode, maxDelay}")
    if value.get("mode") != "trailing":
        raise _refuse("debounce", "only mode trailing (the last trigger's payload runs) is served; Trigger.dev's "
                                  "leading (its default) keeps the first trigger's payload, which Baton does not")
    out: dict[str, Any] = {"key": value["key"], "mode": "trailing",
                           "window": _seconds("debounce.delay", value.get("delay"))}
    if value.get("maxDelay") is not None:
        out["max_delay"] = _seconds("debounce.maxDelay", value["maxDelay"])
    return out


async def h_tapi_trigger(req: Req) -> web.StreamResponse:
    """tasks.trigger: the new run's id (``isCached`` when an idempotency key named a run already made)."""
    run_id, code = await trigger_one(req, req.params["task_id"], trigger_item(req.body or {}))
    return json_response({"id": TRIGGER_PREFIX + run_id, **({"isCached": True} if code == 2 else {})})
