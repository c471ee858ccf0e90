"""Trigger.dev's batch API: batch.trigger and tasks.batchTrigger of @trigger.dev/sdk, as Baton runs.

The SDK (4.x) makes a batch in two calls: ``POST /api/v3/batches`` says how many items will come (and
an optional idempotency key), then ``POST /api/v3/batches/{id}/items`` sends them as NDJSON, each
``{index, task, payload, options}``. Each item becomes a run of the Baton job named as its task, read as
tasks.trigger reads its body (trigger_tasks.py), with the batch's id as its ``batch_id`` (runs.list
``filter[batch]``). An item's run is named after the batch and its index, so an item sent again (the SDK
sends the stream again after a failure) makes no second run. Older 4.x SDKs post every item at once to
``/api/v2/tasks/batch``, which does both steps.

An item whose task is not a Baton job, or that asks what Baton cannot honour, makes no run: the batch
records why (``processing.errors``) and reads PARTIAL_FAILED, as Trigger.dev's does for items it could not
trigger. A line that is not a valid item refuses the whole stream (400), before any run is made.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from aiohttp import web

from ..admission import rejection
from ..errors import SubmissionError
from ..records import Run, iso
from ..statuses import TERMINAL
from .errors import ApiError
from .handlers_jobs import new_batch_id, spec_of
from .routing import Req, json_response
from .run_helpers import load_runs
from .trigger_tasks import NOT_A_TASK, trigger_item
from .views import TRIGGER_PREFIX

__all__ = ["h_tapi_batch_create", "h_tapi_batch_items", "h_tapi_batch_retrieve", "h_tapi_batch_trigger"]

#: the batch's own fields in its hash; each item adds r<index> (its run) or e<index> (why it made none)
_META = "meta"


def _refuse_in_task(body: dict[str, Any]) -> None:
    for name in ("parentRunId", "resumeParentOnCompletion"):
        if body.get(name):
            raise ApiError(400, "unsupported_parameter", f"{name} is not served: {NOT_A_TASK}")


async def _create(req: Req, run_count: int, key: str | None) -> tuple[str, dict[str, Any], bool]:
    """A new batch of ``run_count`` items, or the one ``key`` made before (then True): its id and request."""
    # a key names one batch per project: its id is derived from both, so making it twice is one write
    batch_id = new_batch_id() if key is None else "batch_" + hashlib.blake2b(
        f"{req.project}\0{key}".encode(), digest_size=10).hexdigest()
    meta = {"project": req.project, "run_count": run_count, "created_at": int(time.time() * 1000)}
    if key is not None:
        meta["idempotency_key"] = key
    hash_key = req.baton.keys.trigger_batch(batch_id)
    pipe = req.baton.redis.pipeline(transaction=True)
    pipe.hsetnx(hash_key, _META, orjson.dumps(meta))
    pipe.hget(hash_key, _META)
    pipe.expire(hash_key, req.state.settings.runs_kept_s)
    made, stored, _ = await pipe.execute()
    return batch_id, orjson.loads(stored), not made


async def _load(req: Req, batch_id: str) -> tuple[str, dict[str, Any], dict[str, bytes]]:
    """A batch of the caller's project: its hash key, request and items (404 for any other)."""
    hash_key = req.baton.keys.trigger_batch(batch_id)
    fields = {k.decode(): v for k, v in (await req.baton.redis.hgetall(hash_key)).items()}
    stored = fields.pop(_META, None)
    meta = orjson.loads(stored) if stored is not None else None
    if meta is None or meta.get("project") != req.project:
        raise ApiError(404, "not_found", f"batch {batch_id} does not exist (or was made by another project, or "
                                         "outlived its runs)")
    return hash_key, meta, fields


def _error(task: str, exc: ApiError | SubmissionError) -> dict[str, Any]:
    code, message = (exc.code, exc.message) if isinstance(exc, ApiError) else (exc.reason, str(exc))
    return {"taskIdentifier": task, "error": message, "errorCode": code}


async def _add(req: Req, batch_id: str, hash_key: str, received: set[int],
               items: list[dict[str, Any]]) -> tuple[int, int]:
    """Make the runs of the items whose index was not received before; how many were new, and how many not."""
    specs, places = [], []
    errors: dict[int, dict[str, Any]] = {}
    seen = set(received)
    for item in items:
        index = item["index"]
        if index in seen:
            continue
        seen.add(index)
        try:
            body = trigger_item(item)
            body["id"] = f"{batch_id}_{index}"  # (an item sent again names the run it made: runs_create's code 0)
            specs.append(await spec_of(req, item["task"], body, batch_id))
            places.append((index, item["task"]))
        except (ApiError, SubmissionError) as exc:
            errors[index] = _error(item["task"], exc)
    made = await req.baton.create_detailed(specs, raise_rejected=False) if specs else []
    fields: dict[str, bytes | str] = {}
    for (index, task), (run_id, code) in zip(places, made, strict=True):
        if code < 0 and (refused := rejection(code, run_id)):
            errors[index] = _error(task, refused)  # (refused inside runs_create: a full max_queued cap)
        else:
            fields[f"r{index}"] = run_id  # (made now, before, or an idempotency key's or debounce's run)
    fields.update({f"e{index}": orjson.dumps({"index": index, **e}) for index, e in errors.items()})
    if fields:
        pipe = req.baton.redis.pipeline(transaction=True)
        pipe.hset(hash_key, mapping=fields)
        pipe.expire(hash_key, req.state.settings.runs_kept_s)
        await pipe.execute()
    new = len(seen) - len(received)
    return new, len(items) - new


def _received(fields: dict[str, bytes]) -> set[int]:
    """The indexes of the items a batch has (each has made its run, or failed to)."""
    return {int(name[1:]) for name in fields if name[:1] in ("r", "e")}


async def h_tapi_batch_create(req: Req) -> web.StreamResponse:
    """batch.trigger's first call: the batch its items will be sent to."""
    body = req.body
    _refuse_in_task(body)
    batch_id, meta, cached = await _create(req, body["runCount"], body.get("idempotencyKey"))
    out: dict[str, Any] = {"id": batch_id, "runCount": meta["run_count"], "isCached": cached}
    if "idempotency_key" in meta:
        out["idempotencyKey"] = meta["idempotency_key"]
    return json_response(out)


async def h_tapi_batch_items(req: Req) -> web.StreamResponse:
    """batch.trigger's second call: the items, as NDJSON; the batch is sealed once every index came."""
    batch_id = req.params["batch_id"]
    hash_key, meta, fields = await _load(req, batch_id)
    expected = meta["run_count"]
    items: list[dict[str, Any]] = req.body or []
    past = next((item["index"] for item in items if item["index"] >= expected), None)
    if past is not None:
        raise ApiError(400, "invalid_body", f"item index {past} is past the batch's runCount ({expected})")
    received = _received(fields)
    accepted, deduplicated = await _add(req, batch_id, hash_key, received, items)
    count = len(received | {item["index"] for item in items})
    out: dict[str, Any] = {"id": batch_id, "itemsAccepted": accepted, "itemsDeduplicated": deduplicated,
                           "sealed": count == expected}
    if count != expected:
        out |= {"enqueuedCount": count, "expectedCount": expected}
    return json_response(out)


async def h_tapi_batch_trigger(req: Req) -> web.StreamResponse:
    """A batch in one request (the SDK's batchTriggerV3): every item, indexed by its place."""
    body = req.body
    _refuse_in_task(body)
    items = [{**item, "index": i} for i, item in enumerate(body["items"])]
    batch_id, _, _ = await _create(req, len(items), None)
    await _add(req, batch_id, req.baton.keys.trigger_batch(batch_id), set(), items)
    return json_response({"id": batch_id, "runCount": len(items)})


async def h_tapi_batch_retrieve(req: Req) -> web.StreamResponse:
    """batch.retrieve: the batch, its runs by index and the items that made none."""
    batch_id = req.params["batch_id"]
    _, meta, fields = await _load(req, batch_id)
    expected = meta["run_count"]
    runs = {int(name[1:]): value.decode() for name, value in fields.items() if name.startswith("r")}
    errors = sorted((orjson.loads(value) for name, value in fields.items() if name.startswith("e")),
                    key=lambda e: e["index"])
    ordered = [runs[i] for i in sorted(runs)]
    records: list[Run] = await load_runs(req, ordered)
    sealed = len(runs) + len(errors) == expected
    if not sealed:
        status = "PROCESSING"
    elif not runs:
        status = "ABORTED"
    elif errors:
        status = "PARTIAL_FAILED"
    else:
        status = "COMPLETED" if all(r.status in TERMINAL for r in records) else "PENDING"
    created = meta["created_at"]
    updated = max([created, *(r.updated_at_ms or r.created_at_ms for r in records)])
    processing: dict[str, Any] = {"errors": errors}
    if sealed:
        processing["completedAt"] = iso(max([created, *(r.created_at_ms for r in records)]))
    out: dict[str, Any] = {"id": batch_id, "status": status, "createdAt": iso(created), "updatedAt": iso(updated),
                           "runCount": expected, "runs": [TRIGGER_PREFIX + run_id for run_id in ordered],
                           "processing": processing}
    if "idempotency_key" in meta:
        out["idempotencyKey"] = meta["idempotency_key"]
    return json_response(out)
