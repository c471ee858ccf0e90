"""The worker app of the tracing test: an SDK TracerProvider with the in-memory exporter, whose spans
are written to $BATON_TEST_SPANS (JSON lines) when the process exits."""

from __future__ import annotations

import atexit
import json
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime import Baton, RunContext

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)


def span_record(span: Any) -> dict[str, Any]:
    """The fields of a finished span the test compares."""
    return {
        "name": span.name, "trace_id": f"{span.context.trace_id:032x}", "span_id": f"{span.context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "attributes": dict(span.attributes or {}), "status": span.status.status_code.name,
    }


@atexit.register
def _dump() -> None:
    path = os.environ.get("BATON_TEST_SPANS")
    if path:
        with open(path, "w") as out:
            for span in exporter.get_finished_spans():
                out.write(json.dumps(span_record(span)) + "\n")


app = Baton()


@app.job(queue="traced")
async def traced_parent(ctx: RunContext, payload: Any) -> Any:
    prepared = await ctx.step("prepare", lambda: {"n": payload["n"]})
    ctx.log.info("parent prepared %s", prepared)
    child = await ctx.trigger_and_wait("traced_child", prepared)
    return {"child": child}


@app.job(queue="traced")
async def traced_child(ctx: RunContext, payload: Any) -> Any:
    doubled = await ctx.step("double", lambda: payload["n"] * 2)
    return doubled
