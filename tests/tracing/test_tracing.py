"""OpenTelemetry tracing: one trigger makes one connected trace across the producer's and a worker's
processes (the SDK's in-memory exporter on both sides), and log lines carry its ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime import Baton, Settings
from runtime.errors import SubmissionError
from runtime.tracing import check_traceparent, current_traceparent
from tests.nodes import spawn_worker, stop_process

APP = "tests.tracing.app:app"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """This process's spans (the producer's), kept in memory."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


async def _noop(ctx: Any, payload: Any) -> None:
    return None


def _record(span: Any) -> dict[str, Any]:
    return {"name": span.name, "trace_id": f"{span.context.trace_id:032x}", "span_id": f"{span.context.span_id:016x}",
            "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
            "attributes": dict(span.attributes or {})}


@pytest.mark.timeout(120)
async def test_one_trigger_is_one_connected_trace_across_processes(
    settings: Settings, make_app: Callable[..., Baton], tmp_path: Path, exporter: InMemorySpanExporter,
) -> None:
    # Given a worker process that traces (its spans go to an in-memory exporter, dumped at exit)
    spans_file = tmp_path / "worker-spans.jsonl"
    env = {"BATON_REDIS_URL": settings.redis_url, "BATON_PREFIX": settings.prefix, "BATON_NODE_ID": "traced-w1",
           "BATON_TRACING": "true", "BATON_TEST_SPANS": str(spans_file), "BATON_LOG_FORMAT": "json",
           "BATON_METRICS_PORT": "0", "BATON_SHUTDOWN_GRACE_S": "2"}
    worker = spawn_worker(APP, env, tmp_path / "worker.log")
    producer = make_app()
    for job in ("traced_parent", "traced_child"):
        producer.job(job, queue="traced")(_noop)
    exporter.clear()
    # When a request handler of the producer triggers a run through the client, and another producer
    # appends an entry carrying the same trace context to the submission stream
    with trace.get_tracer("shop").start_as_current_span("checkout") as root:
        run_id = await producer.trigger("traced_parent", {"n": 21})
        entry_id = await producer.redis.xadd(producer.keys.submit_stream, {
            "job": "traced_child", "input": '{"n": 1}', "traceparent": current_traceparent()})
    trace_id = f"{root.get_span_context().trace_id:032x}"
    try:
        run = await producer.wait_for(run_id, 60)
        streamed = await producer.wait_for(entry_id.decode(), 60)
    finally:
        code = stop_process(worker)
    assert (run.status, run.output, streamed.status, streamed.output) == ("completed", {"child": 42}, "completed", 2)
    assert code == 0
    spans = [_record(s) for s in exporter.get_finished_spans()]
    spans += [json.loads(line) for line in spans_file.read_text().splitlines()]
    by_id = {s["span_id"]: s for s in spans}

    # Then every span, in both processes, is in the producer's trace, and each has its parent in it
    assert {s["trace_id"] for s in spans} == {trace_id}
    roots = [s for s in spans if s["parent_id"] is None]
    assert [r["name"] for r in roots] == ["checkout"]
    assert all(s["parent_id"] in by_id for s in spans if s["parent_id"] is not None)

    def ancestors(span: dict[str, Any]) -> list[str]:
        names = []
        while span["parent_id"] is not None:
            span = by_id[span["parent_id"]]
            names.append(span["name"])
        return names

    names = {s["name"] for s in spans}
    # and the node's spans cover the run's whole life: claim, handler, steps, the child run, the outcome
    assert {"baton.claim", "baton.run traced_parent", "baton.step prepare", "baton.child traced_child",
            "baton.run traced_child", "baton.step double", "baton.finish", "baton.intake"} <= names
    runs = {(s["attributes"]["baton.run_id"], s["attributes"]["baton.attempt"]): s
            for s in spans if s["name"].startswith("baton.run ")}
    for (_, attempt), span in runs.items():
        assert span["attributes"]["baton.job"] in ("traced_parent", "traced_child") and attempt >= 1
    # the parent ran twice (it waited for its child); its second attempt replayed the memoised step
    assert {a for r, a in runs if r == run_id} == {1, 2}
    replayed = [s for s in spans if s["name"] == "baton.step prepare" and s["attributes"]["baton.step.replayed"]]
    assert len(replayed) == 1 and by_id[replayed[0]["parent_id"]]["attributes"]["baton.attempt"] == 2
    # the child run's handler hangs under the parent's child span, the stream entry's under its intake span
    child_runs = [s for s in runs.values() if s["attributes"]["baton.job"] == "traced_child"]
    under = {s["attributes"]["baton.run_id"]: ancestors(s) for s in child_runs}
    assert under[entry_id.decode()] == ["checkout"]  # a sibling of the intake span, under the producer's
    (child_id,) = [r for r in under if r != entry_id.decode()]
    assert under[child_id][:3] == ["baton.child traced_child", "baton.run traced_parent", "checkout"]
    (intake,) = [s for s in spans if s["name"] == "baton.intake"]
    assert intake["attributes"]["baton.run_id"] == entry_id.decode() and ancestors(intake) == ["checkout"]
    # and every attempt's outcome was written under its run span
    finishes = [s for s in spans if s["name"] == "baton.finish"]
    assert len(finishes) == len(runs) and all(by_id[f["parent_id"]]["name"].startswith("baton.run ")
                                              for f in finishes)

    # and the handler's log line carries the trace and the span it was written in
    lines = [json.loads(x) for x in (tmp_path / "worker.log").read_text().splitlines() if x.startswith("{")]
    # (once: the parent's second attempt replays the code before its wait without logging it again)
    logged = [x for x in lines if x["msg"].startswith("parent prepared")]
    assert len(logged) == 1 and logged[0]["attempt"] == 1
    assert all(x["trace_id"] == trace_id and by_id[x["span_id"]]["name"] == "baton.run traced_parent" for x in logged)


def test_a_traceparent_is_checked_at_the_door() -> None:
    # Given valid and invalid W3C trace contexts, then valid ones pass and the others are rejected
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert check_traceparent(good) == good and check_traceparent("") == ""
    for bad in ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01", "garbage", 7, good + "-x"):
        with pytest.raises(SubmissionError) as err:
            check_traceparent(bad)
        assert err.value.reason == "bad_traceparent"


async def test_a_bad_stream_traceparent_is_rejected_and_the_rest_flows(make_app: Callable[..., Baton]) -> None:
    # Given a node, and two stream entries: one with a malformed traceparent, one without
    from tests.nodes import running_node

    app = make_app()
    app.job("plain")(_noop)
    async with running_node(app):
        bad = await app.redis.xadd(app.keys.submit_stream, {"job": "plain", "traceparent": "nope"})
        good = await app.redis.xadd(app.keys.submit_stream, {"job": "plain"})
        # Then the bad one is in the rejected stream with its reason, and the good one runs
        assert (await app.wait_for(good.decode(), 20)).status == "completed"
        rejected = await app.redis.xrange(app.keys.rejected_stream)
    assert [(f[b"entry_id"], f[b"reason"]) for _, f in rejected] == [(bad, b"bad_traceparent")]


async def test_the_api_continues_the_callers_trace(make_app: Callable[..., Baton],
                                                   exporter: InMemorySpanExporter) -> None:
    # Given a node with the HTTP API, tracing, in this process (its spans go to this process's exporter)
    import aiohttp

    from runtime.api import hash_key
    from tests.nodes import running_node
    from tests.servers import free_port

    key = "bk_" + "t" * 30
    app = make_app(api_port=free_port(), api_host="127.0.0.1", api_keys=f"default:{hash_key(key)}", tracing=True)

    @app.job()
    async def greet(ctx: Any, payload: Any) -> str:
        return await ctx.step("compose", lambda: f"hello {payload['name']}")

    exporter.clear()
    async with running_node(app) as node:
        assert node.api is not None
        await node.api.listening.wait()
        # When a caller in a trace of its own POSTs a trigger with its traceparent header
        with trace.get_tracer("caller").start_as_current_span("caller") as caller:
            headers = {"Authorization": f"Bearer {key}", "traceparent": current_traceparent()}
            async with aiohttp.ClientSession() as http, http.post(
                    f"http://127.0.0.1:{app.settings.api_port}/v1/jobs/greet/trigger", headers=headers,
                    json={"input": {"name": "ada"}}) as resp:
                assert resp.status == 201, await resp.text()
                run_id = (await resp.json())["id"]
        assert (await app.wait_for(run_id, 20)).output == "hello ada"
    spans = {s.context.span_id: s for s in exporter.get_finished_spans()}
    # Then the API's span is the caller's child, and the run's spans hang under the API's span
    (api_span,) = [s for s in spans.values() if s.name == "baton.api triggerJob"]
    assert api_span.parent is not None and api_span.parent.span_id == caller.get_span_context().span_id
    (run_span,) = [s for s in spans.values() if s.name == "baton.run greet"]
    assert run_span.parent is not None and run_span.parent.span_id == api_span.context.span_id
    assert {s.context.trace_id for s in spans.values()} == {caller.get_span_context().trace_id}
    assert "baton.step compose" in {s.name for s in spans.values()}
