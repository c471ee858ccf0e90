"""The CLI's webhook commands over the HTTP API: ``baton webhooks ls|add|get|rm|deliveries|redeliver``.

Tables by default, ``--json`` for scripts; every error is one line on stderr and exit 1."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from .client import ApiClient, ApiClientError
from .commands import _dump, _table, _when, api_client, emit
from .commands_ops import _sub

__all__ = ["add_webhook_commands", "run_webhook_command"]

HOOK_HEADERS = ["ID", "URL", "EVENTS", "CREATED"]
DELIVERY_HEADERS = ["ID", "EVENT", "RUN", "STATUS", "ATTEMPTS", "LAST ERROR", "UPDATED"]


def add_webhook_commands(sub: Any) -> None:
    """Add ``baton webhooks`` to the ``baton`` command."""
    hooks = sub.add_parser("webhooks", help="the project's outgoing webhooks and their deliveries (HTTP API)")
    wsub = hooks.add_subparsers(dest="webhooks_command", required=True)
    _sub(wsub, "ls", "list webhooks")
    add = _sub(wsub, "add", "register a webhook (prints its signing secret, shown only now)")
    add.add_argument("url")
    add.add_argument("--events", required=True,
                     help="comma-separated: run.completed, run.failed, run.dead_lettered, run.canceled, run.expired")
    add.add_argument("--secret", default=None, help="signing secret (16-256 characters; generated if left out)")
    add.add_argument("--description", default=None)
    for verb, text in (("get", "show a webhook"), ("rm", "delete a webhook")):
        _sub(wsub, verb, text).add_argument("webhook_id")
    dels = _sub(wsub, "deliveries", "list a webhook's deliveries, newest first")
    dels.add_argument("webhook_id")
    dels.add_argument("--status", choices=["pending", "delivered", "dead_letter"], default=None)
    again = _sub(wsub, "redeliver", "send a delivery again now (a dead-lettered one, say)")
    again.add_argument("webhook_id")
    again.add_argument("delivery_id")


async def run_webhook_command(ns: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``baton webhooks ...``; returns the exit code."""
    out = out or sys.stdout
    try:
        async with api_client(ns) as api:
            return await _webhooks(api, ns, out)
    except ApiClientError as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 1


def _hook_row(h: dict[str, Any]) -> list[str]:
    return [h["id"], h["url"], ",".join(h["events"]), _when(h["created_at"])]


def _delivery_row(d: dict[str, Any]) -> list[str]:
    return [d["id"], d["event"], d["run_id"], d["status"], str(d["attempts"]), d["last_error"] or "-",
            _when(d["updated_at"])]


async def _webhooks(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    cmd = ns.webhooks_command
    if cmd == "ls":
        page = await api.get("/v1/webhooks")
        emit_rows(ns, out, page, [_hook_row(h) for h in page["data"]], HOOK_HEADERS)
    elif cmd == "add":
        body = {"url": ns.url, "events": [e.strip() for e in ns.events.split(",") if e.strip()]}
        body.update({k: v for k, v in (("secret", ns.secret), ("description", ns.description)) if v is not None})
        hook = await api.post("/v1/webhooks", body)
        emit(ns, out, hook, f"webhook {hook['id']} -> {hook['url']} ({','.join(hook['events'])})\n"
                            f"signing secret (shown only now): {hook['secret']}\n")
    elif cmd == "get":
        hook = await api.get(f"/v1/webhooks/{ns.webhook_id}")
        emit_rows(ns, out, hook, [_hook_row(hook)], HOOK_HEADERS)
    elif cmd == "rm":
        emit(ns, out, await api.delete(f"/v1/webhooks/{ns.webhook_id}"), f"deleted webhook {ns.webhook_id}\n")
    elif cmd == "deliveries":
        page = await api.get(f"/v1/webhooks/{ns.webhook_id}/deliveries", status=ns.status)
        emit_rows(ns, out, page, [_delivery_row(d) for d in page["data"]], DELIVERY_HEADERS)
    else:
        found = await api.post(f"/v1/webhooks/{ns.webhook_id}/deliveries/{ns.delivery_id}/redeliver")
        emit(ns, out, found, f"delivery {found['id']} queued again\n")
    return 0


def emit_rows(ns: argparse.Namespace, out: TextIO, value: Any, rows: list[list[str]], headers: list[str]) -> None:
    """JSON with --json, else a table."""
    if ns.json:
        _dump(value, out)
    else:
        _table(rows, headers, out)
