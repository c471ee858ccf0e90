"""The HTTP API's aiohttp application: routes from the route table, validation, auth, errors.

aiohttp serves the API because it is a mature asyncio server that runs on the
node's own uvloop event loop beside the actors (no second process or thread),
streams server-sent events natively (StreamResponse), enforces a body size
limit (client_max_size), and needs no ASGI adapter.

Every error answer is JSON ``{"error", "code", "request_id"}``; the request id
is the caller's ``X-Request-Id`` when it is a plain token, else a new one, and
is echoed in the ``X-Request-Id`` response header.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from redis.exceptions import RedisError

from ..app import Baton
from ..errors import (
    BatonError,
    NotReplicated,
    QueueFull,
    RedisUnavailable,
    RunAlreadyFinished,
    RunAlreadyReplayed,
    RunExists,
    RunNotFinished,
    RunNotFound,
    RunStatusConflict,
    SubmissionError,
    UnknownJob,
    UnknownParent,
)
from ..json_values import decode
from ..ranges import RANGE_KEYWORD, check
from ..redis_faults import described
from ..settings import Settings
from ..tracing import annotate, server_span
from .auth import ApiKeys
from .bulk_actions import BulkRunner, running
from .errors import ApiError, redis_transient
from .media import UNANSWERED_HEADER, is_json, media_type
from .routes import ROUTES
from .routing import DEADLINE, STREAM, ApiState, Param, Req, Route, component, json_response
from .sessions import Sessions, session_project
from .ui import add_ui_routes

__all__ = ["HTTP_CODES", "INTERNAL_ERROR", "ApiMetrics", "create_app", "error_response"]

log = logging.getLogger("baton.api")
STATE: web.AppKey[ApiState] = web.AppKey("baton_state", ApiState)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("baton_request_id", str)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_CONFLICTS: dict[type[BatonError], str] = {
    RunAlreadyFinished: "already_finished", RunNotFinished: "not_finished", RunStatusConflict: "wrong_status",
    RunAlreadyReplayed: "already_replayed", RunExists: "exists",
}
#: a 503 (Redis down or refusing commands for now) asks clients to try again after this many seconds
RETRY_SOON = {"Retry-After": "1"}
#: the error code of each HTTP status the API answers without a code of its own
HTTP_CODES = {400: "bad_request", 403: "forbidden", 404: "route_not_found", 405: "method_not_allowed",
              413: "body_too_large", 415: "unsupported_media_type"}
#: what a request that failed on Baton's side is told (the log has the rest, under its request id)
INTERNAL_ERROR = "internal error (see the server log for this request id)"


class ApiMetrics:
    """Request counters and latencies of the API (created once per registry)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter("baton_api_requests_total", "HTTP API requests by operation and status",
                                ["operation", "status"], registry=registry)
        self.duration = Histogram("baton_api_request_duration_seconds", "HTTP API request handling time",
                                  ["operation"], registry=registry,
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))


def error_response(status: int, code: str, message: str, request_id: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    """An error answer: ``{"error", "code", "request_id"}``."""
    return json_response({"error": message, "code": code, "request_id": request_id}, status=status,
                         headers=headers)


def _check_schema(where: str, validator: Draft202012Validator, value: Any, code: str = "invalid_parameter") -> None:
    """Raise the 400 of a value its schema refuses (no local names the error: its traceback would
    hold the frame that holds it, a reference cycle per bad request)."""
    error = best_match(validator.iter_errors(value))
    if error is not None:
        ranged = error.schema.get(RANGE_KEYWORD) if isinstance(error.schema, dict) else None
        if ranged is not None:
            # a numeric option out of its range or of the wrong type: the same error (bad_<option>,
            # naming the range) as a stream entry's or app.trigger's, from the same check
            check(ranged, error.instance)
        path = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        message = _schema_message(error.message, error.instance, str(error.validator), error.validator_value)
        raise ApiError(400, code, f"{where}{path}: {message}")


def _lines(raw: bytes, validator: Draft202012Validator) -> list[Any]:
    """An NDJSON body's values, each checked against the route's body schema; blank lines are skipped. The
    first line that is not JSON, or not valid, refuses the whole body (400 naming the line): nothing of it
    is acted on."""
    values = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            value = decode(line)
        except ValueError as exc:
            raise ApiError(400, "invalid_json", f"line {number} of the request body {exc}") from None
        _check_schema(f"line {number}", validator, value, "invalid_body")
        values.append(value)
    return values


#: the schema keywords that bound a size, and what they count
_SIZE_BOUNDS = {"maxItems": "items", "minItems": "items", "maxLength": "characters", "minLength": "characters",
                "maxProperties": "properties", "minProperties": "properties"}


def _schema_message(message: str, instance: Any, keyword: str, bound: Any) -> str:
    """A schema error's message that says why however long the value was: jsonschema's begins with the
    value itself ("[...] is too long"), which a long one buried past any sensible cut. A long value is
    named by its kind and size instead, and a size bound says what it is."""
    shown = repr(instance)
    if len(shown) > 80 and message.startswith(shown):
        kinds: dict[type, tuple[str, str]] = {list: ("a list", "items"), str: ("a string", "characters"),
                                              dict: ("an object", "properties")}
        kind, counted = kinds.get(type(instance), (type(instance).__name__, ""))
        size = f" of {len(instance)} {counted}" if counted else ""
        message = f"{kind}{size}{message[len(shown):]}"
    if keyword in _SIZE_BOUNDS:
        message += f" ({'at most' if keyword.startswith('max') else 'at least'} {bound} {_SIZE_BOUNDS[keyword]})"
    return message if len(message) <= 300 else message[:300] + "..."


#: what a query parameter of each JSON type must be, as its 400 says
_KIND_WANTED = {"integer": "an integer", "number": "a finite number", "boolean": "true or false"}


def _coerce(param: Param, raw: str) -> Any:
    kind = param.schema.get("type")
    try:
        if kind == "integer":
            if re.fullmatch(r"-?\d{19,}", raw.strip()):
                # (an integer all the same: its schema's bounds are what it is outside of)
                raise ApiError(400, "invalid_parameter", f"{param.name}: {raw.strip()[:40]} is out of range")
            if not re.fullmatch(r"-?\d{1,18}", raw.strip()):
                raise ValueError(raw)
            return int(raw)
        if kind == "number":
            number = float(raw)
            if not math.isfinite(number):  # (nan passes every minimum and maximum check)
                raise ValueError(raw)
            return number
        if kind == "boolean":
            if raw not in ("true", "false"):
                raise ValueError(raw)
            return raw == "true"
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{param.name} must be {_KIND_WANTED[str(kind)]}") from None
    if kind == "array":
        # an empty value is no items; an empty item between commas is an invalid item, not nothing
        return raw.split(",") if raw else []
    return raw


class _Endpoint:
    """One route's aiohttp handler: auth, parameters, body, then the route's handler."""

    def __init__(self, route: Route, state: ApiState) -> None:
        self.route = route
        self.state = state
        self.params = [(p, Draft202012Validator(p.schema)) for p in route.params]
        self.query_names = {p.name for p in route.params if p.location == "query"}
        self.body = Draft202012Validator(component(route.body)) if route.body else None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        route = self.route
        project = ""
        if route.auth:
            token = ApiKeys.bearer(request.headers.get("Authorization"))
            if token:
                found = self.state.keys.project_of(token)
            else:  # the dashboard's session cookie (checks the CSRF token of a state-changing request)
                assert self.state.sessions is not None
                found = await session_project(request, self.state.sessions)
            if found is None:
                raise ApiError(401, "unauthorized", "missing or invalid API key (Authorization: Bearer <key>)",
                               {"WWW-Authenticate": 'Bearer realm="baton"'})
            project = found
            if route.operator and not self.state.settings.may_operate(project):
                raise ApiError(403, "forbidden", f"keys of project {project} may not use the operator endpoints "
                               "(api_operator_projects)")
        refused = sorted(set(request.query) & set(route.refused))
        if refused:
            raise ApiError(400, "unsupported_parameter", f"{refused[0]} is not served: {route.refused[refused[0]]}")
        unknown = sorted(set(request.query) - self.query_names)
        if unknown:  # a misspelt filter must not silently list (or cancel) everything
            raise ApiError(400, "invalid_parameter", f"unknown query parameter(s): {', '.join(unknown)[:200]}")
        values: dict[str, Any] = {}
        for param, validator in self.params:
            if param.location == "path":
                raw: str | None = request.match_info.get(param.name)
            elif param.location == "header":
                raw = request.headers.get(param.name)
            else:
                items = request.query.getall(param.name, [])
                raw = ",".join(items) if items else None
                if raw == "" and param.empty_is_absent:
                    raw = None
            if raw is None:
                if param.required:
                    raise ApiError(400, "invalid_parameter", f"{param.name} is required")
                if "default" in param.schema:
                    values[param.name] = param.schema["default"]
                continue
            value = _coerce(param, raw)
            _check_schema(param.name, validator, value)
            values[param.name] = value
        if values.get("project_id", project) != project:
            # Strait clients name their project on list calls: it must be the key's own, never another's
            raise ApiError(403, "wrong_project", "project_id is not the project of this API key")
        body: Any = None
        raw_body = await request.read() if request.body_exists else b""
        # only a truly empty body counts as none: whitespace is not JSON
        if raw_body and self.body is not None and route.body_lines:
            body = _lines(raw_body, self.body)
        elif raw_body and (self.body is not None or route.method != "GET"):
            try:
                decoded = decode(raw_body)
            except ValueError as exc:  # (what a body may hold is what any door takes: runtime/json_values.py)
                raise ApiError(400, "invalid_json", f"the request body {exc}") from None
            # an operation that takes no body ignores a JSON one (clients send {}), but one that is not
            # JSON was refused above rather than the operation carried out
            if self.body is not None:
                _check_schema("body", self.body, decoded, "invalid_body")
                body = decoded
        elif self.body is not None and route.body_required:
            raise ApiError(400, "invalid_body", "a JSON request body is required")
        req = Req(request=request, state=self.state, project=project, params=values, body=body,
                  request_id=request[REQUEST_ID])
        response = await route.handler(req)
        if req.unanswered:
            response.headers[UNANSWERED_HEADER] = ",".join(str(index) for index in sorted(req.unanswered))
        if route.viewed and response.status < 300 and is_json(response.content_type):
            # the body is in the request's view: say which, as the OpenAPI document's media types do
            response.content_type = media_type(req.view)
        return response


def _middleware(state: ApiState, metrics: ApiMetrics | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    max_body = state.settings.max_body_bytes
    tracing = state.settings.tracing
    deadline_s = state.settings.api_request_timeout_s

    async def traced(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """The handler under the request's server span: runs it triggers carry the span's context."""
        operation = request.match_info.route.name or "unmatched"
        with server_span(f"baton.api {operation}", request.headers,
                         {"http.request.method": request.method, "url.path": request.path,
                          "baton.request_id": request[REQUEST_ID]}) as current:
            resp = await handler(request)
            annotate(current, attributes={"http.response.status_code": resp.status})
            return resp

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        given = request.headers.get("X-Request-Id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        request[REQUEST_ID] = request_id
        started = time.perf_counter()
        resp: web.StreamResponse
        body_in = False
        try:
            if request.content_length is not None and request.content_length > max_body:
                raise ApiError(413, "body_too_large", f"request body over {max_body} bytes")
            async with asyncio.timeout(deadline_s) as deadline:
                request[DEADLINE] = deadline
                if request.body_exists and request.content_type != "multipart/form-data":
                    # read here (aiohttp keeps it for the handler): a body that does not arrive in time
                    # is the client's delay, and the answer must not blame Redis for it
                    try:
                        await request.read()
                    except web.RequestPayloadError as exc:  # e.g. a Content-Encoding it is not in
                        # (the connection is done: aiohttp cannot read past the body)
                        raise ApiError(400, "invalid_body", f"the request body could not be read: {exc}",
                                       {"Connection": "close"}) from None
                body_in = True
                resp = await (traced(request, handler) if tracing else handler(request))
        except TimeoutError:  # (asyncio's: Redis's own is a RedisError, below)
            if not body_in:
                log.info("request %s: its body did not arrive within %gs (api_request_timeout_s)", request_id,
                         deadline_s)
                resp = error_response(408, "request_timeout",
                                      f"the request body did not arrive within {deadline_s:g}s", request_id)
            else:
                log.warning("request %s: no answer within %gs (api_request_timeout_s)", request_id, deadline_s)
                resp = error_response(503, "unavailable", f"Redis did not answer within {deadline_s:g}s; retry later",
                                      request_id, RETRY_SOON)
        except ApiError as exc:
            resp = error_response(exc.status, exc.code, exc.message, request_id, exc.headers)
        except web.HTTPException as exc:
            if exc.status == 413:
                message = f"request body over {max_body} bytes"
            else:
                message = exc.reason or "error"
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            resp = error_response(exc.status, HTTP_CODES.get(exc.status, "http_error"), message, request_id, headers)
        except (UnknownJob, UnknownParent) as exc:
            resp = error_response(404, exc.reason, str(exc), request_id)
        except QueueFull as exc:  # admission control: over max_queued until runs start
            resp = error_response(429, exc.reason, str(exc), request_id)
        except SubmissionError as exc:
            resp = error_response(400, exc.reason, str(exc), request_id)
        except RunNotFound as exc:
            resp = error_response(404, "not_found", str(exc), request_id)
        except tuple(_CONFLICTS) as exc:
            resp = error_response(409, _CONFLICTS[type(exc)], str(exc), request_id)
        except NotReplicated as exc:  # on the master, not acknowledged: the client retries (idempotent)
            resp = error_response(503, "not_replicated", str(exc), request_id, RETRY_SOON)
        except (RedisError, RedisUnavailable, ConnectionRefusedError) as exc:
            if redis_transient(exc):
                log.warning("request %s: Redis unavailable: %s", request_id, described(exc))
                resp = error_response(503, "unavailable",
                                      f"Redis cannot serve this now ({described(exc)[:200]}); retry later",
                                      request_id, RETRY_SOON)
            else:  # Redis refused a command Baton sent: a bug to fix, not an outage to wait out
                log.exception("request %s %s %s: Redis refused a command", request_id, request.method, request.path)
                resp = error_response(500, "internal_error", INTERNAL_ERROR, request_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("request %s %s %s failed", request_id, request.method, request.path)
            resp = error_response(500, "internal_error", INTERNAL_ERROR, request_id)
        started_stream = request.get(STREAM)
        if started_stream is not None and started_stream.prepared and resp is not started_stream:
            # an error after a stream's headers went out: answering it would write a second status line
            # into the stream's body; end the stream instead (the handler logged why)
            resp = started_stream
        if not resp.prepared:
            resp.headers["X-Request-Id"] = request_id
        if metrics is not None:
            operation = request.match_info.route.name or "unmatched"
            metrics.requests.labels(operation=operation, status=str(resp.status)).inc()
            metrics.duration.labels(operation=operation).observe(time.perf_counter() - started)
        return resp

    return middleware


def _router_path(path: str, paths: list[str]) -> str:
    """``path`` as aiohttp registers it: a ``{param}`` segment does not match the literal segments other
    routes have at that place (``/v1/runs/{run_id}`` is not ``/v1/runs/batch``), so that a method a
    literal resource lacks answers 405 with only that resource's methods in Allow."""
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if not (segment.startswith("{") and segment.endswith("}")):
            continue
        literals = sorted({other[i] for other in (p.split("/") for p in paths)
                           if len(other) > i and other[:i] == segments[:i] and not other[i].startswith("{")})
        if literals:
            taken = "|".join(re.escape(literal) for literal in literals)
            segments[i] = f"{{{segment[1:-1]}:(?!(?:{taken})(?:/|$))[^/]+}}"
    return "/".join(segments)


def create_app(baton: Baton, settings: Settings | None = None, *, keys: ApiKeys | None = None,
               stopping: asyncio.Event | None = None, ready: Callable[[], bool] | None = None,
               registry: Any = None, metrics: ApiMetrics | None = None) -> web.Application:
    """The aiohttp application serving the API for ``baton``."""
    settings = settings or baton.settings
    state = ApiState(baton=baton, settings=settings, keys=keys if keys is not None else ApiKeys.from_settings(settings),
                     stopping=stopping or asyncio.Event(), ready=ready, registry=registry)
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_middleware(state, metrics)])
    if state.sessions is None:
        state.sessions = Sessions(baton, state.keys, settings.ui_session_ttl_s)
    app[STATE] = state
    paths = [route.path for route in ROUTES]
    for route in ROUTES:
        handle = _Endpoint(route, state).handle
        resource = app.router.add_resource(_router_path(route.path, paths), name=route.operation_id)
        resource.add_route(route.method, handle)
        if route.method == "GET" and route.media_type != "text/event-stream":
            # HEAD wherever GET is (RFC 9110 9.3.2: uptime checks, curl -I): the same answer, its body left
            # out by aiohttp. Not on an event stream, whose answer never ends
            resource.add_route("HEAD", handle)
    add_ui_routes(app, state.sessions)

    state.bulk = BulkRunner(baton, settings.api_scan_limit)

    async def bulk_actions(_app: web.Application) -> AsyncIterator[None]:
        assert state.bulk is not None
        async with running(state.bulk):
            yield

    app.cleanup_ctx.append(bulk_actions)
    # one memory of partitions out per process: the app's own (a run's id is drawn away from them)
    state.outages = baton.outages

    async def outage_probes(_app: web.Application) -> AsyncIterator[None]:
        yield
        await baton.outages.close()

    app.cleanup_ctx.append(outage_probes)

    async def on_shutdown(_app: web.Application) -> None:
        state.stopping.set()  # open event streams end within a second

    app.on_shutdown.append(on_shutdown)
    return app
