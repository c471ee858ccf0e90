"""What an AI run records besides logs: model usage, tool calls, structured outputs, streamed chunks.

A mixin of :class:`runtime.context.RunContext`: usage, tool-call and output records are buffered
and written fenced with the next flush, into the run's record stream; chunks are written at once.
None is made while the handler replays code an earlier attempt ran (``RunContext.replaying``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from typing import Any

from .context_part import ContextPart
from .limits import stored_json
from .records import iso

__all__ = ["RunRecords"]


class RunRecords(ContextPart):
    """``ctx.record_usage``, ``ctx.record_tool_call``, ``ctx.output`` and ``ctx.stream``."""

    _lock: threading.Lock
    _token: str
    _current_step: str | None
    _records: list[tuple[str, str]]
    _rec_seq: int
    _write_numbers: dict[str, int]
    _chunks: list[tuple[str, str]]
    _chunk_task: asyncio.Task[None] | None
    _loop: asyncio.AbstractEventLoop | None
    attempt: int

    def _buffered(self) -> None:
        raise NotImplementedError

    def _next_write(self, channel: str) -> int:
        """The number of the next fenced write on ``channel`` ('u' logs and fields, 'rec', 'chunks',
        'cp'), kept for its retries: a write sent again under its number is answered, not applied
        twice (runtime/lua/includes/common.lua, written_before). A channel's writes go out one at a
        time, in order (the flush lock, the one chunk writer), so a higher number is always newer."""
        n = self._write_numbers.get(channel, 0) + 1
        self._write_numbers[channel] = n
        return n

    def _add_record(self, kind: str, record: dict[str, Any]) -> None:
        if self.replaying:  # recorded when that code first ran: usage and cost are not counted twice
            return
        with self._lock:
            self._rec_seq += 1
            full = {"id": f"{self.run_id}:{self.attempt}:{kind[0]}{self._rec_seq}", "run_id": self.run_id,
                    **record, "attempt": self.attempt, "step_name": self._current_step,
                    "created_at": iso(self.now_ms())}
            # a structured output is a result (max_output_bytes); usage and tool calls are records
            limit = "max_output_bytes" if kind == "output" else "max_record_bytes"
            self._records.append((kind, stored_json(f"the {kind} record", full, self._app.settings, limit)))
        self._buffered()

    def record_usage(self, provider: str, model: str, prompt_tokens: int = 0, completion_tokens: int = 0,
                     total_tokens: int | None = None, cost_microusd: int = 0) -> None:
        """Record one model call's token usage and cost (millionths of a US dollar); written with the next
        flush and listed by ``GET /v1/runs/{id}/usage``."""
        self._add_record("usage", {
            "provider": provider, "model": model, "prompt_tokens": int(prompt_tokens),
            "completion_tokens": int(completion_tokens),
            "total_tokens": int(prompt_tokens) + int(completion_tokens) if total_tokens is None else int(total_tokens),
            "cost_microusd": int(cost_microusd),
        })

    def record_tool_call(self, tool_name: str, input: Any = None, output: Any = None, *,
                         duration_ms: float | None = None, status: str = "completed",
                         error: str | None = None) -> None:
        """Record one tool call (input, output, duration, status); listed by ``GET /v1/runs/{id}/tool-calls``."""
        self._add_record("tool_call", {
            "tool_name": tool_name, "input": input, "output": output,
            "duration_ms": None if duration_ms is None else int(duration_ms), "status": status, "error": error,
        })

    def output(self, key: str, value: Any, schema: dict[str, Any] | None = None) -> None:
        """Record a structured output under ``key`` (a later one with the same key supersedes it).

        With a JSON Schema, ``value`` must match it (``ValueError`` otherwise).
        """
        if not isinstance(key, str) or not key or len(key) > 256:
            raise ValueError("output key must be a non-empty string of at most 256 characters")
        if schema is not None:
            import jsonschema

            try:
                jsonschema.validate(value, schema)
            except jsonschema.ValidationError as exc:
                raise ValueError(f"output {key!r} does not match its schema: {exc.message}") from None
            except jsonschema.SchemaError as exc:
                raise ValueError(f"the schema of output {key!r} is not a valid JSON Schema: {exc.message}") from None
        self._add_record("output", {"output_key": key, "schema": schema, "value": value})

    def stream(self, chunk: Any) -> None:
        """Stream a chunk (e.g. LLM tokens) to ``GET /v1/runs/{id}/stream/chunks`` as it is produced.

        The write starts at once (chunks produced meanwhile go out together, in order); callable from the
        handler's thread too. Fenced like every other write; any still pending are written at the next
        step boundary and before the attempt's outcome.
        """
        data = stored_json("the stream chunk", chunk, self._app.settings, "max_record_bytes")
        if self.replaying:  # streamed when that code first ran
            return
        with self._lock:
            self._chunks.append(("chunk", data))
        loop = self._loop
        if loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._kick_chunks()
        else:
            loop.call_soon_threadsafe(self._kick_chunks)

    def _kick_chunks(self) -> None:
        if self._loop is not None and (self._chunk_task is None or self._chunk_task.done()):
            self._chunk_task = self._loop.create_task(self._write_chunks())

    async def _write_chunks(self) -> None:
        """The only writer of chunks (so they stay in order): drains the buffer until it is empty."""
        while True:
            with self._lock:
                chunks, self._chunks = self._chunks, []
            if not chunks:
                return
            try:
                appended = await self._on_lease(
                    functools.partial(self._app.scripts.append, self.run_id, self._token, "chunks", chunks,
                                      number=self._next_write("chunks")),
                    "streaming chunks")
                if appended == -1:
                    return  # lease lost: the flush loop notices and stops the handler
            except Exception as exc:  # noqa: BLE001 - a failed chunk write must not kill the handler
                logging.getLogger("baton.context").warning("could not write chunks of run %s: %s",
                                                           self.run_id, exc)
                return
