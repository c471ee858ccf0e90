"""The OpenAPI 3.1 document, generated from the route table (runtime/api/routes.py).

The generated document is committed as ``runtime/api/openapi.json``; a test
fails when the two differ. Regenerate with::

    python -m runtime.api.openapi          # writes runtime/api/openapi.json
    python -m runtime.api.openapi --check  # exit 1 when the committed file is stale
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from .media import UNANSWERED_HEADER, media_type
from .routes import ROUTES
from .routing import Route
from .schemas import VIEW_RUN, VIEWED, ref, viewed_name
from .schemas_ops import COMPONENTS

__all__ = ["COMMITTED", "TAGS", "document", "render_document"]

#: the document's tags (groups of operations), in the order people read them
TAGS = ("Runs", "Jobs", "Events", "Webhooks", "Queues", "Schedules", "Nodes", "Bulk actions", "Trigger.dev API",
        "Hatchet API", "Operations")


COMMITTED = Path(__file__).with_name("openapi.json")

DESCRIPTION = f"""\
Manage Baton runs over HTTP: list, inspect, cancel, replay, pause, stream.

**Auth.** Every `/v1` endpoint needs `Authorization: Bearer <key>`. A key belongs to one project; runs belong to
projects (the project of the key that triggered them; `default` for runs submitted from Python or the stream).
A run of another project answers 404, exactly like a run that does not exist. The dashboard (/ui) signs in with
a key and then sends a session cookie instead, scoped to the key's project; with the cookie, every request but
GET, HEAD and OPTIONS needs the session's X-CSRF-Token header (403 csrf_failed otherwise).

**Operator endpoints** (queues, schedules, job limits, nodes) act on the whole deployment: only keys of the
projects in `api_operator_projects` (default `default`) may call them; others get 403.

**Views.** Endpoints that return runs take `?view=native|durably|trigger|hatchet|strait` (or the header
`X-Baton-View`; the query parameter wins; the `api_view` setting chooses the default): Baton's native run,
durably's ClientRun, a Trigger.dev run, a Hatchet V1WorkflowRun or a Strait run. The response's Content-Type
names the view (`application/vnd.baton.strait+json`; native is `application/json`), and each operation
documents one schema per view. Lists
keep their envelope (`data`, `next_cursor`, ...) in every view but strait, which answers as Strait does: a
bare array, paged by `cursor` = the last run's `created_at`, 200 for replays and empty 204 answers for
cancel and debug mode.

**Errors.** Every error is JSON `{{"error": message, "code": machine code, "request_id": id}}`; 400 invalid
parameters (unknown query parameters included) or body, 401 missing or bad key, 404 not found, 409 the run's
status forbids the operation, 408 body not arrived within `api_request_timeout_s`, 413 body over
`max_body_bytes`, 503 Redis unavailable. Send `X-Request-Id` to
choose the request id.

**Partial listings.** On Redis Cluster, while a master is down, run lists and queue counts answer with what the
other masters hold and name the partitions they left out in the `{UNANSWERED_HEADER}` response header
(comma-separated partition numbers); without the header a listing is whole. A run on the lost master, and
bulk actions, answer 503.
"""


def _responses(route: Route) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, (description, schema) in sorted(route.responses.items()):
        if route.viewed and schema in VIEWED:
            # one media type per view: the server's Content-Type names the view it rendered
            content = {media_type(view): {"schema": ref(viewed_name(schema, view))} for view in VIEW_RUN}
        elif route.media_type == "application/json" and schema is None and status == 204:
            out[str(status)] = {"description": description}
            continue
        elif route.media_type == "application/json":
            content = {"application/json": {"schema": ref(schema) if schema else {"type": "object"}}}
        else:
            content = {route.media_type: {"schema": {"type": "string"}}}
        out[str(status)] = {"description": description, "content": content}
    errors: dict[int, str] = {}
    if route.params or route.body:
        errors[400] = "Invalid parameters or body"
    if route.auth:
        errors[401] = "Missing or invalid API key"
    if route.operator:
        errors[403] = "The key's project may not use operator endpoints (api_operator_projects)"
    for status in route.errors:
        errors[status] = {403: "project_id is not the key's project", 404: "Not found (or another project's)",
                          409: "The run's status forbids this",
                          429: "Over a max_queued cap (code queue_full): retry once runs started"
                          }.get(status, "Error")
    if route.body:
        errors[408] = "The request body did not arrive within api_request_timeout_s"
        errors[413] = "Request body too large"
    if route.operation_id not in ("health", "metrics", "openapi", "ready"):
        errors[503] = "Redis unavailable"
    for status, description in sorted(errors.items()):
        out.setdefault(str(status), {"description": description,
                                     "content": {"application/json": {"schema": ref("Error")}}})
    out["default"] = {"description": "Error", "content": {"application/json": {"schema": ref("Error")}}}
    return out


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "tags": [route.tag]}
    if route.description:
        op["description"] = route.description
    if route.params:
        op["parameters"] = []
        for p in route.params:
            item: dict[str, Any] = {"name": p.name, "in": p.location, "required": p.required or p.location == "path",
                                    "schema": p.schema}
            if p.description:
                item["description"] = p.description
            if p.schema.get("type") == "array":
                item["style"], item["explode"] = "form", False
                items = p.schema.get("items", {})
                if items.get("type") == "string" and "pattern" not in items:
                    # a comma-separated list: an item cannot hold a comma (it would read as two)
                    item["schema"] = {**p.schema, "items": {**items, "pattern": "^[^,]*$"}}
            op["parameters"].append(item)
    if route.body:
        # (NDJSON: the schema is a line's; OpenAPI 3.1 describes a stream of values by its items' schema)
        media = "application/x-ndjson" if route.body_lines else "application/json"
        op["requestBody"] = {"required": route.body_required, "content": {media: {"schema": ref(route.body)}}}
    op["responses"] = _responses(route)
    if not route.auth:
        op["security"] = []
    return op


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document of the API."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Baton API", "version": "1", "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": name} for name in TAGS],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An API key (baton apikey PROJECT makes one)"}},
            "schemas": COMPONENTS,
        },
    }


def render_document() -> bytes:
    """The document as the committed file holds it."""
    return orjson.dumps(document(), option=orjson.OPT_INDENT_2) + b"\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or --check) runtime/api/openapi.json."""
    args = sys.argv[1:] if argv is None else argv
    text = render_document()
    if "--check" in args:
        if not COMMITTED.exists() or COMMITTED.read_bytes() != text:
            print(f"{COMMITTED} is stale: run python -m runtime.api.openapi", file=sys.stderr)
            return 1
        return 0
    COMMITTED.write_bytes(text)
    print(f"wrote {COMMITTED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
