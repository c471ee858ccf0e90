"""Bulk actions that take long: cancel or replay up to 100,000 runs matching a filter, in the background.

A request creates the action's record (``{prefix}:bulk:<id>``, a hash) and
returns at once; a task of the API process works through the project's run
index page by page (the listing's filters and order) and records its progress
after every run: counts, the first errors, and the position after the last run
it handled. The task holds a lease (``bulk:<id>:lease``, renewed as it goes);
every API process looks for running actions whose lease is gone (their
process stopped or died) and takes them over from the recorded position, so an
action survives a restart of the process that began it. A run handled just
before a crash and not yet recorded is the only one that may be handled twice:
canceling twice is harmless; replaying twice makes a second new run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..app import Baton
from ..cancelling import cancel_and_wait
from ..codec import text
from ..connection import server_ms
from ..errors import BatonError
from ..records import iso, stored_int
from ..redis_faults import described, is_outage
from ..statuses import LIVE, TERMINAL
from .listing import RunFilter, RunIndex, filter_from, list_runs

__all__ = ["ACTIONS", "MAX_RUNS", "BulkRunner", "action_filter", "action_view", "running"]

log = logging.getLogger("baton.api.bulk")

#: what a bulk action does to each matching run, and the statuses a run may have for it
ACTIONS: dict[str, frozenset[str]] = {"cancel": frozenset(LIVE), "replay": frozenset(TERMINAL)}
#: most runs one action handles
MAX_RUNS = 100_000
#: how long a lease lasts without renewal; renewed every LEASE_RENEW_S while the action runs
LEASE_MS = 30_000
LEASE_RENEW_S = 5.0
#: how often every API process looks for actions whose runner is gone
WATCH_INTERVAL_S = 5.0
#: how long a finished action's record is kept
KEEP_MS = 24 * 3600 * 1000
#: errors kept on the record (the first ones)
MAX_ERRORS = 20
#: runs listed per page
PAGE = 100


def action_filter(project: str, action: str, body: dict[str, Any]) -> RunFilter:
    """The runs an action applies to: the filter's, in the statuses the action can act on."""
    fltr = filter_from(project, body, code="invalid_body")
    allowed = ACTIONS[action]
    fltr.statuses = allowed if fltr.statuses is None else frozenset(fltr.statuses & allowed)
    return fltr


def action_view(raw: dict[Any, Any]) -> dict[str, Any]:
    """An action's record as the API shows it."""
    f = {text(k): text(v) for k, v in raw.items()}

    def count(name: str) -> int:
        return stored_int(f.get(name)) or 0

    return {
        "id": f.get("id", ""), "action": f.get("action", ""), "status": f.get("status", ""),
        "filter": orjson.loads(f.get("filter") or "{}"), "limit": count("limit"), "processed": count("processed"),
        "succeeded": count("succeeded"), "failed": count("failed"), "scanned": count("scanned"),
        "errors": orjson.loads(f.get("errors") or "[]"), "error": f.get("error") or None,
        "cancel_requested": f.get("cancel_requested") == "1",
        "created_at": iso(stored_int(f.get("created_at"))), "updated_at": iso(stored_int(f.get("updated_at"))),
        "finished_at": iso(stored_int(f.get("finished_at"))),
    }


class BulkRunner:
    """Starts, runs, and takes over the bulk actions of one API process."""

    def __init__(self, baton: Baton, scan_limit: int) -> None:
        self.baton = baton
        self.scan_limit = scan_limit
        #: this process's lease token
        self.owner = secrets.token_hex(8)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        #: set by close(): each action stops after recording the run in hand
        self.stopping = asyncio.Event()

    async def create(self, project: str, action: str, filter_body: dict[str, Any], fltr: RunFilter,
                     limit: int) -> dict[str, Any]:
        """Record a new action and start it in the background; returns its view."""
        keys = self.baton.keys
        action_id = "bulk_" + secrets.token_hex(10)
        now = await server_ms(self.baton.redis)
        record = {"id": action_id, "project": project, "action": action, "status": "running",
                  "filter": orjson.dumps(filter_body), "limit": limit, "processed": 0, "succeeded": 0, "failed": 0,
                  "scanned": 0, "errors": "[]", "created_at": now, "updated_at": now}
        pipe = self.baton.redis.pipeline(transaction=False)
        pipe.hset(keys.bulk_action(action_id), mapping=record)
        pipe.zadd(keys.bulk_actions, {action_id: now})
        pipe.zremrangebyscore(keys.bulk_actions, "-inf", now - 7 * KEEP_MS)
        await pipe.execute()
        if await self.baton.redis.set(keys.bulk_lease(action_id), self.owner, px=LEASE_MS, nx=True):
            self._start(action_id, project, fltr)
        return action_view(await self.baton.redis.hgetall(keys.bulk_action(action_id)))

    async def get(self, project: str, action_id: str) -> dict[str, Any] | None:
        """The project's action, or None (also for another project's)."""
        raw = await self.baton.redis.hgetall(self.baton.keys.bulk_action(action_id))
        if not raw or text(raw.get(b"project", raw.get("project", b""))) != project:
            return None
        return action_view(raw)

    async def list(self, project: str, limit: int = 100) -> list[dict[str, Any]]:
        """The project's actions, newest first."""
        keys = self.baton.keys
        ids = [text(m) for m in await self.baton.redis.zrevrange(keys.bulk_actions, 0, 999)]
        pipe = self.baton.redis.pipeline(transaction=False)
        for action_id in ids:
            pipe.hgetall(keys.bulk_action(action_id))
        out = []
        for raw in await pipe.execute():
            if raw and text(raw.get(b"project", b"")) == project:
                out.append(action_view(raw))
                if len(out) == limit:
                    break
        return out

    async def cancel(self, project: str, action_id: str) -> dict[str, Any] | None:
        """Ask a running action to stop (after the run in hand); None when the project has no such action."""
        if await self.get(project, action_id) is None:
            return None
        await self.baton.redis.hset(self.baton.keys.bulk_action(action_id), "cancel_requested", "1")
        return await self.get(project, action_id)

    def _start(self, action_id: str, project: str, fltr: RunFilter | None = None) -> None:
        task = asyncio.get_running_loop().create_task(self._run(action_id, project, fltr),
                                                      name=f"bulk:{action_id}")
        self.tasks[action_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(action_id, None))

    async def take_over(self) -> int:
        """Start every running action whose lease is gone; returns how many this process took."""
        keys, redis = self.baton.keys, self.baton.redis
        ids = [text(m) for m in await redis.zrange(keys.bulk_actions, 0, -1)]
        taken = 0
        for action_id in ids:
            if action_id in self.tasks:
                continue
            status, project = await redis.hmget(keys.bulk_action(action_id), "status", "project")
            if status is None or text(status) != "running":
                continue
            if await redis.set(keys.bulk_lease(action_id), self.owner, px=LEASE_MS, nx=True):
                log.info("bulk action %s: taking it over (its runner is gone)", action_id)
                self._start(action_id, text(project))
                taken += 1
        return taken

    async def watch(self) -> None:
        """Take over orphaned actions every WATCH_INTERVAL_S, until cancelled."""
        while True:
            try:
                await self.take_over()
            except Exception as exc:  # noqa: BLE001 - a Redis outage must not end the watch
                log.warning("looking for orphaned bulk actions failed: %s", exc)
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def close(self) -> None:
        """Stop this process's actions and give their leases back, so another process resumes them now."""
        self.stopping.set()
        tasks = list(self.tasks.items())
        if tasks:
            # a clean stop records the run in hand, so the next runner neither skips nor repeats it
            await asyncio.wait([task for _id, task in tasks], timeout=5.0)
        for action_id, task in tasks:
            await cancel_and_wait([task])
            await self._give_back(action_id)

    async def _give_back(self, action_id: str) -> None:
        """Release this process's lease of an action, so that a process's next watch takes it over
        (best effort: a lease Redis cannot release now lapses within LEASE_MS)."""
        with contextlib.suppress(Exception):
            if await self.baton.redis.get(self.baton.keys.bulk_lease(action_id)) == self.owner.encode():
                await self.baton.redis.delete(self.baton.keys.bulk_lease(action_id))

    async def _renew(self, action_id: str) -> bool:
        lease = self.baton.keys.bulk_lease(action_id)
        if await self.baton.redis.get(lease) != self.owner.encode():
            return False
        await self.baton.redis.pexpire(lease, LEASE_MS)
        return True

    async def _run(self, action_id: str, project: str, fltr: RunFilter | None) -> None:
        redis, keys = self.baton.redis, self.baton.keys
        key = keys.bulk_action(action_id)
        raw = {text(k): text(v) for k, v in (await redis.hgetall(key)).items()}
        action = raw["action"]
        if fltr is None:  # taken over: the request's filter, decoded as when it was accepted
            fltr = action_filter(project, action, orjson.loads(raw["filter"]))
        limit = int(raw["limit"])
        done = {name: int(raw.get(name) or 0) for name in ("processed", "succeeded", "failed", "scanned")}
        errors: list[dict[str, str]] = orjson.loads(raw.get("errors") or "[]")
        cursor: str | None = raw.get("cursor") or None
        renewed = time.monotonic()
        try:
            while done["processed"] < limit:
                if self.stopping.is_set():
                    return
                if (await redis.hget(key, "cancel_requested")) == b"1":
                    await self._finish(key, "canceled")
                    return
                page = await list_runs(self.baton, RunIndex.of_project(project), fltr,
                                       min(PAGE, limit - done["processed"]), cursor, self.scan_limit)
                done["scanned"] += page.scanned
                for run, position in zip(page.runs, page.positions, strict=True):
                    error = await self._apply(action, run.id)
                    done["processed"] += 1
                    done["failed" if error else "succeeded"] += 1
                    if error and len(errors) < MAX_ERRORS:
                        errors.append({"id": run.id, "error": error})
                    cursor = position
                    await redis.hset(key, mapping={**done, "cursor": cursor, "updated_at": await server_ms(redis),
                                                   **({"errors": orjson.dumps(errors)} if error else {})})
                    if self.stopping.is_set():
                        return  # the lease goes back in close(); another process goes on from here
                if not page.runs and page.next_cursor:
                    cursor = page.next_cursor  # a page with nothing matching: go on after what it examined
                    await redis.hset(key, mapping={"scanned": done["scanned"], "cursor": cursor})
                if time.monotonic() - renewed > LEASE_RENEW_S:
                    if not await self._renew(action_id):
                        log.warning("bulk action %s: lease lost; another process goes on with it", action_id)
                        return
                    renewed = time.monotonic()
                if not page.has_more:
                    break
            await self._finish(key, "completed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_outage(exc):
                # Redis down or refusing writes (out of memory ...) is not the action's failure: it stays
                # running from the last run it recorded, and a process's watch takes it over once Redis
                # serves again (the lease goes back now if Redis still takes that)
                log.warning("bulk action %s paused by a Redis outage (%s); it is taken over where it stopped",
                            action_id, described(exc))
                await self._give_back(action_id)
                return
            log.exception("bulk action %s failed", action_id)
            await self._finish(key, "failed", f"{type(exc).__name__}: {exc}")

    async def _apply(self, action: str, run_id: str) -> str | None:
        """Cancel or replay one run; the error text when that was refused (finished meanwhile ...)."""
        try:
            if action == "cancel":
                await self.baton.cancel(run_id)
            else:
                await self.baton.replay(run_id)
        except BatonError as exc:
            return str(exc) or type(exc).__name__
        return None

    async def _finish(self, key: str, status: str, error: str = "") -> None:
        now = await server_ms(self.baton.redis)
        pipe = self.baton.redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"status": status, "finished_at": now, "updated_at": now,
                                **({"error": error} if error else {})})
        pipe.pexpire(key, KEEP_MS)
        await pipe.execute()


@contextlib.asynccontextmanager
async def running(runner: BulkRunner) -> AsyncIterator[None]:
    """Watch for orphaned actions while the API serves; stop and hand back this process's actions after."""
    watcher = asyncio.get_running_loop().create_task(runner.watch(), name="bulk:watch")
    try:
        yield
    finally:
        await cancel_and_wait([watcher])
        await runner.close()
