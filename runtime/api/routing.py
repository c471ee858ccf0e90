"""Route metadata: every endpoint is declared once, with its parameters, body and responses.

The same declarations register the aiohttp routes, validate requests (query
and path parameters by their schemas, bodies with jsonschema) and generate
the OpenAPI document (runtime/api/openapi.py), so the document cannot drift
from what the server does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from aiohttp import web

from ..app import Baton
from ..errors import RedisUnavailable
from ..keys import Partition
from ..partition_outages import PartialRead, PartitionOutages
from ..settings import Settings
from .auth import ApiKeys
from .errors import ApiError
from .schemas import VIEW_NAMES
from .schemas_ops import COMPONENTS
from .sessions import Sessions

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .bulk_actions import BulkRunner

__all__ = ["DEADLINE", "STREAM", "ApiState", "Param", "Req", "Route", "json_response"]

T = TypeVar("T")

Handler = Callable[["Req"], Awaitable[web.StreamResponse]]
#: the streaming response a handler started (its status line and headers are sent once it is prepared)
STREAM: web.RequestKey[web.StreamResponse] = web.RequestKey("baton_stream", web.StreamResponse)
#: the request's deadline (api_request_timeout_s); an event stream lifts it once its headers go out
DEADLINE: web.RequestKey[asyncio.Timeout] = web.RequestKey("baton_deadline", asyncio.Timeout)


@dataclass(frozen=True)
class Param:
    """A query, path or header parameter and its JSON Schema."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    location: str = "query"
    required: bool = False
    #: the answer is rendered in the view this parameter names (the ``view`` parameter of endpoints that
    #: answer runs; the endpoints that only take run ids accept a view without rendering in it)
    renders: bool = False
    #: an empty value is no filter at all, where the seed's own server reads it so (Trigger.dev's list
    #: filters: its SDK sends ``filter[status]=`` for ``status: []``); elsewhere an empty value is refused
    empty_is_absent: bool = False


@dataclass(frozen=True)
class Route:
    """One endpoint: what it does, what it takes and what it returns."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    description: str = ""
    params: tuple[Param, ...] = ()
    body: str | None = None  #: component schema name of the JSON body
    body_required: bool = False
    #: the body is NDJSON (application/x-ndjson): a JSON value per line, each valid against ``body``; the
    #: handler gets the list of them (Trigger.dev's batch items)
    body_lines: bool = False
    #: status -> (description, component schema name or None); 2xx are the successes
    responses: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    #: media type of the success response (application/json unless SSE, metrics ...)
    media_type: str = "application/json"
    auth: bool = True
    #: extra error statuses this operation can answer (beyond 400/401/404/413/503)
    errors: tuple[int, ...] = ()
    #: an operator endpoint: it acts on the whole deployment, so only keys of ``api_operator_projects``
    operator: bool = False
    #: query parameters a client of this endpoint may send that Baton cannot serve, each with why: they
    #: answer 400 with that reason rather than be ignored (a filter ignored would list or act on too much)
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def viewed(self) -> bool:
        """Whether it renders in the view the request chooses (it takes ``view``)."""
        return any(p.renders for p in self.params)


@dataclass
class ApiState:
    """What every handler may use."""

    baton: Baton
    settings: Settings
    keys: ApiKeys
    stopping: asyncio.Event
    #: False while the node drains (readiness); None when the API runs alone
    ready: Callable[[], bool] | None = None
    registry: CollectorRegistry | None = None
    #: dashboard sign-in sessions (made by create_app when None)
    sessions: Sessions | None = None
    #: runs this process's background bulk actions (set by create_app)
    bulk: BulkRunner | None = None
    #: partitions whose master did not answer a listing, skipped until their probe is (set by create_app)
    outages: PartitionOutages | None = None


@dataclass
class Req:
    """A validated request: the caller's project, parsed parameters and body."""

    request: web.Request
    state: ApiState
    project: str
    params: dict[str, Any]
    body: Any
    request_id: str
    #: partitions a listing of this request left out (UNANSWERED_HEADER)
    unanswered: set[int] = field(default_factory=set)

    def partial_read(self) -> PartialRead:
        """For a listing that goes on without the partitions whose master does not answer (noted in
        ``unanswered``). Listings that act on what they find (bulk actions) read every partition or fail."""
        assert self.state.outages is not None
        return PartialRead(self.state.outages, self.unanswered)

    async def in_partition(self, partition: Partition, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, which reads or writes one partition (a run's). While the API knows that
        partition's master does not answer (Redis Cluster), it fails at once with a 503 rather than
        waiting out the client's retries (~1.6 s) on every request; its first failure tells the API so."""
        read = self.partial_read()
        if read.skips(partition):
            raise RedisUnavailable(f"partition {partition.index}, which holds this run, does not answer now")
        try:
            return await call()
        except Exception as exc:
            read.failed(partition, exc)  # (raises it unless it is an outage that left other partitions)
            raise

    @property
    def baton(self) -> Baton:
        """The Baton client."""
        return self.state.baton

    @property
    def view(self) -> str:
        """The requested run view: ?view=, else the X-Baton-View header, else the api_view setting."""
        chosen = self.params.get("view") or self.request.headers.get("X-Baton-View") or self.state.settings.api_view
        if chosen not in VIEW_NAMES:
            raise ApiError(400, "invalid_parameter", f"view must be one of {', '.join(VIEW_NAMES)}")
        return str(chosen)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json",
                        headers=headers)


def component(name: str) -> dict[str, Any]:
    """A schema that validates against component ``name`` with every component resolvable."""
    return {"$ref": f"#/components/schemas/{name}", "components": {"schemas": COMPONENTS}}
