"""OpenTelemetry tracing: the producer's trace context travels with the run, and a node adds spans.

Optional: it needs ``opentelemetry-api`` (``pip install 'baton[tracing]'``); the
application configures the SDK and its exporter (a ``TracerProvider``), as for
any library. Without the package every function here is a cheap no-op.

- **Propagation** is W3C Trace Context: a run carries its producer's
  ``traceparent`` (RunSpec.trace_context, stored on the run record). The Python
  client takes it from the current span; a stream entry may carry it as the
  ``traceparent`` field; the API takes the request's ``traceparent`` header
  (through the server span it opens). Producers always propagate when a span is
  current; nodes record spans only with ``tracing`` on (BATON_TRACING=true).
- **Spans** of a node, in the producer's trace: ``baton.intake`` (a stream entry
  turned into a run), ``baton.claim`` (ready to leased, by the Redis clock),
  ``baton.run <job>`` (the handler; outcome and error status), ``baton.step
  <name>`` (each step; ``baton.step.replayed`` for a memoised one),
  ``baton.child <job>`` (a child run triggered: the child's spans are its
  children), ``baton.finish`` (the outcome written), and ``baton.api
  <operation>`` on the API. Each has the run id, job and attempt as attributes.
- **Logs** carry ``trace_id`` and ``span_id`` while a span is current.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import ConfigError, SubmissionError

try:  # the optional dependency
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    trace = None  # type: ignore[assignment]

__all__ = [
    "TRACEPARENT_RE", "annotate", "available", "check_traceparent", "current_traceparent", "end_span", "log_ids",
    "require",
    "server_span", "span", "start_span",
]

#: W3C traceparent: version 00, 32 hex trace id, 16 hex parent span id, 2 hex flags (lower case)
TRACEPARENT_RE = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_NAME = "baton"


def available() -> bool:
    """Whether opentelemetry-api is installed."""
    return trace is not None


def require(enabled: bool) -> None:
    """At start: tracing asked for (BATON_TRACING) needs the package; a clear error if it is missing."""
    if enabled and trace is None:
        raise ConfigError("BATON_TRACING=true needs OpenTelemetry: pip install 'baton[tracing]' "
                          "(and configure a TracerProvider with your exporter)")


def check_traceparent(value: Any) -> str:
    """A submitted traceparent, checked (SubmissionError ``bad_traceparent`` otherwise); "" stays ""."""
    if value is None or value == "":
        return ""
    m = TRACEPARENT_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None or m.group(1) == _ZERO_TRACE or m.group(2) == _ZERO_SPAN:
        raise SubmissionError("bad_traceparent",
                              "traceparent must be a W3C trace context: 00-<32 hex>-<16 hex>-<2 hex>")
    return str(value)


def current_traceparent() -> str:
    """The current span's context as a traceparent, or "" (no span, or no OpenTelemetry)."""
    if trace is None:
        return ""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def log_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, for log records; None without one."""
    if trace is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def _parent(traceparent: str) -> Any:
    """An OpenTelemetry context whose current span is the remote parent, or None (a new trace)."""
    if not traceparent:
        return None
    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def _attributes(run_id: str, job: str, attempt: int, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"baton.run_id": run_id, "baton.job": job}
    if attempt:
        out["baton.attempt"] = attempt
    if extra:
        out.update(extra)
    return out


def start_span(name: str, *, traceparent: str = "", run_id: str = "", job: str = "", attempt: int = 0,
               kind: str = "internal", start_ns: int | None = None, attributes: Mapping[str, Any] | None = None,
               parent_span: Any = None) -> Any:
    """Start a span that the caller ends (``end_span``): under the remote ``traceparent``, under
    ``parent_span``, or under the current span. None without OpenTelemetry."""
    if trace is None:
        return None
    context = trace.set_span_in_context(parent_span) if parent_span is not None else _parent(traceparent)
    return trace.get_tracer(_NAME).start_span(
        name, context=context, kind=getattr(SpanKind, kind.upper()), start_time=start_ns,
        attributes=_attributes(run_id, job, attempt, attributes),
    )


def annotate(span: Any, *, error: str = "", attributes: Mapping[str, Any] | None = None) -> None:
    """Add attributes to a span, and an error status when ``error`` says what failed (no-op for None)."""
    if span is None:
        return
    if attributes:
        span.set_attributes(dict(attributes))
    if error:
        span.set_status(Status(StatusCode.ERROR, error[:500]))


def end_span(span: Any, *, end_ns: int | None = None, error: str = "", attributes: Mapping[str, Any] | None = None,
             ) -> None:
    """End a span from start_span, with its error status and last attributes (no-op for None)."""
    if span is None:
        return
    annotate(span, error=error, attributes=attributes)
    span.end(end_time=end_ns)


@contextlib.contextmanager
def span(name: str, *, traceparent: str = "", run_id: str = "", job: str = "", attempt: int = 0,
         kind: str = "internal", attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A span that is current inside the block (its context reaches runs triggered there); yields it,
    or None without OpenTelemetry. An exception leaving the block marks it as an error."""
    if trace is None:
        yield None
        return
    with trace.get_tracer(_NAME).start_as_current_span(
        name, context=_parent(traceparent), kind=getattr(SpanKind, kind.upper()),
        attributes=_attributes(run_id, job, attempt, attributes),
    ) as current:
        yield current


@contextlib.contextmanager
def server_span(name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]) -> Iterator[Any]:
    """The API's span of one request: a child of the caller's ``traceparent`` header when it sends a valid
    one, current while the request is handled (so the runs it triggers carry it)."""
    given = headers.get("traceparent", "")
    try:
        parent = check_traceparent(given)
    except SubmissionError:
        parent = ""  # a malformed header starts a new trace rather than failing the request
    with span(name, traceparent=parent, kind="server", attributes=attributes) as current:
        yield current
