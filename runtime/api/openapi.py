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

from .routes import ROUTES
from .routing import Route
from .schemas import ref
from .schemas_ops import COMPONENTS

__all__ = ["COMMITTED", "TAGS", "document", "render_document"]

#: the document's tags (groups of operations), in the order people read them
TAGS = ("Runs", "Jobs", "Events", "Queues", "Schedules", "Nodes", "Bulk actions", "Operations")

COMMITTED = Path(__file__).with_name("openapi.json")

DESCRIPTION = """\
Manage Baton runs over HTTP: list, inspect, cancel, replay, pause, stream.

**Auth.** Every `/v1` endpoint needs `Authorization: Bearer <key>`. A key belongs to one project; runs belong to
projects (the project of the key that triggered them; `default` for runs submitted from Python or the stream).
A run of another project answers 404, exactly like a run that does not exist.

**Operator endpoints** (queues, schedules, job limits, nodes) act on the whole deployment: only keys of the
projects in `api_operator_projects` (default `default`) may call them; others get 403.

**Views.** Endpoints that return runs take `?view=native|durably|trigger|hatchet|strait` (or the header
`X-Baton-View`; the query parameter wins): Baton's native run, durably's ClientRun, a Trigger.dev run, a Hatchet
V1WorkflowRun or a Strait run. Lists keep their envelope (`data`, `next_cursor`, ...) in every view.

**Errors.** Every error is JSON `{"error": message, "code": machine code, "request_id": id}`; 400 invalid
parameters (unknown query parameters included) or body, 401 missing or bad key, 404 not found, 409 the run's
status forbids the operation, 413 body over `max_body_bytes`, 503 Redis unavailable. Send `X-Request-Id` to
choose the request id.
"""


def _responses(route: Route) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, (description, schema) in sorted(route.responses.items()):
        if route.media_type == "application/json":
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
        errors[status] = {404: "Not found (or another project's)", 409: "The run's status forbids this"}.get(
            status, "Error")
    if route.body:
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
            op["parameters"].append(item)
    if route.body:
        op["requestBody"] = {"required": route.body_required,
                             "content": {"application/json": {"schema": ref(route.body)}}}
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
