"""Child runs: the part of :class:`runtime.context.RunContext` that starts runs from a handler and
waits for them durably (``ctx.trigger``, ``ctx.trigger_and_wait``, ``ctx.trigger_and_wait_many``).

A mixin: each child is started once per run, even across retries (its id derives from the run and
the step's position, and the start is recorded as a step); a wait for children ends the attempt
(``Suspend``) until they have all ended. Children live in their parent's partition and project,
and carry its lineage (root and depth).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from .attempt_ends import Suspend
from .context_part import ContextPart
from .errors import ChildRunFailed
from .ids import routed_run_id
from .statuses import TERMINAL

__all__ = ["RunChildren"]


class RunChildren(ContextPart):
    """``ctx.trigger``, ``ctx.trigger_and_wait``, ``ctx.trigger_and_wait_many`` and ``ctx.project``."""

    _lineage: tuple[str, int] | None
    _project: str

    async def confirm_lease(self, work: str) -> None:
        """Fail with LeaseLost unless the lease surely still holds (the context's)."""
        raise NotImplementedError

    def _span(self, name: str, attributes: dict[str, Any]) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def _begin(self, name: str) -> tuple[int, dict[str, Any] | None]:
        raise NotImplementedError

    def _begin_auto(self, prefix: str) -> tuple[str, int, str, dict[str, Any] | None]:
        raise NotImplementedError

    async def _record(self, name: str, index: int, record: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _lineage_info(self) -> tuple[str, int]:
        if self._lineage is None:
            p = self._app.keys.partition_of_run(self.run_id)
            root, depth, project = await self._on_lease(
                lambda: self._app.redis.hmget(p.run(self.run_id), "root_id", "lineage_depth", "project"),
                "reading the run's lineage")
            self._lineage = ((root.decode() if root else self.run_id), int(depth or 0))
            self._project = project.decode() if project else "default"
        return self._lineage

    async def project(self) -> str:
        """The project (API tenant) this run belongs to; its children and continuations inherit it."""
        await self._lineage_info()
        return self._project

    async def _create_children(self, base: str, items: Sequence[tuple[str, Any, dict[str, Any]]]) -> list[str]:
        # the children's specs take this span's context: their spans join this run's trace under it
        jobs = sorted({str(job) for job, _, _ in items})
        with self._span(f"baton.child {','.join(jobs)[:100]}", {"baton.children": len(items)}):
            return await self._spawn_children(base, items)

    async def _spawn_children(self, base: str, items: Sequence[tuple[str, Any, dict[str, Any]]]) -> list[str]:
        root, depth = await self._lineage_info()
        keys = self._app.keys
        specs = []
        for k, (job, payload, options) in enumerate(items):
            child_base = base if len(items) == 1 else f"{base}.{k}"
            # children live in their parent's partition so waits resolve in one slot
            child_id = routed_run_id(keys, self.run_id, child_base)
            extra = {"parent_id": self.run_id, "root_id": root, "lineage_depth": depth + 1,
                     "triggered_by": "spawn", "project": self._project}
            specs.append(await self._app._spec({"job": job, "input": payload, "id": child_id, **options},
                                               source="child", extra=extra))
        await self.confirm_lease("triggering child runs")
        # child ids derive from this run and the step's position: a create tried again makes no second child
        return await self._on_lease(lambda: self._app.create(specs), "triggering child runs")

    async def trigger(self, job: str, payload: Any = None, **options: Any) -> str:
        """Start a child run (once per run, even across retries); returns its id."""
        name, index, tag, record = self._begin_auto("__trigger")
        if record is not None and record.get("status") == "completed":
            return str(record["output"])
        [child] = await self._create_children(f"{self.run_id}.{tag}", [(job, payload, options)])
        now = self.now_ms()
        await self._record(name, index, {"name": name, "index": index, "status": "completed", "output": child,
                                         "error": None, "started_at": now, "completed_at": now})
        return child

    async def trigger_and_wait(self, job: str, payload: Any = None, **options: Any) -> Any:
        """Start a child run and wait for it (durably: the slot is free meanwhile); returns its output.

        Raises :class:`ChildRunFailed` if the child does not complete.
        """
        [result] = await self._wait_children([(job, payload, options)])
        return result

    async def trigger_and_wait_many(self, items: Iterable[tuple[str, Any] | tuple[str, Any, dict[str, Any]]]
                                    ) -> list[Any]:
        """Fan out: start one child per ``(job, input[, options])`` and wait for all; outputs in order."""
        normalised = [(i[0], i[1], i[2] if len(i) > 2 else {}) for i in items]
        return await self._wait_children(normalised)

    async def _wait_children(self, items: Sequence[tuple[str, Any, dict[str, Any]]]) -> list[Any]:
        name, index, tag, record = self._begin_auto("__children")
        if record is None:
            ids = await self._create_children(f"{self.run_id}.{tag}", items)
            now = self.now_ms()
            await self._record(name, index, {"name": name, "index": index, "status": "waiting",
                                             "output": {"children": ids}, "error": None, "started_at": now,
                                             "completed_at": None})
            raise self.endings.note(Suspend({"kind": "children", "ids": ids, "step": name, "index": index}))
        if record.get("status") == "waiting":
            ids = list(record["output"]["children"])
            results = await self._child_results(ids)
            pending = [r["id"] for r in results if r["status"] not in TERMINAL]
            if pending:
                raise self.endings.note(Suspend({"kind": "children", "ids": pending, "step": name, "index": index}))
            record = {**record, "status": "completed", "output": {"children": ids, "results": results},
                      "completed_at": self.now_ms()}
            await self._record(name, index, record)
        outputs = []
        for r in record["output"]["results"]:
            if r["status"] != "completed":
                raise ChildRunFailed(r["id"], r["status"], r.get("error"))
            outputs.append(r["output"])
        return outputs

    async def _child_results(self, ids: list[str]) -> list[dict[str, Any]]:
        p = self._app.keys.partition_of_run(self.run_id)
        pipe = self._app.redis.pipeline(transaction=False)
        for child in ids:
            pipe.hmget(p.run(child), "status", "output", "error")
        out = []
        for child, (status, output, error) in zip(ids, await pipe.execute(), strict=True):
            out.append({
                "id": child, "status": status.decode() if status else "expired",
                "output": orjson.loads(output) if output else None,
                "error": orjson.loads(error) if error else None,
            })
        return out
