"""The CLI's operator commands over the HTTP API: ``baton queues``, ``baton schedules``, ``baton nodes``,
``baton limits``, ``baton admission`` and ``baton bulk``. Tables by default, ``--json`` for scripts; every
error is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import quote

import orjson

from .client import ApiClient, ApiClientError
from .commands import _dump, _table, _when, add_api_args, api_client, emit

__all__ = ["OPS_COMMANDS", "add_ops_commands", "run_ops_command"]

#: the top-level commands this module adds
OPS_COMMANDS = ("queues", "schedules", "nodes", "limits", "admission", "bulk", "rejected")


class UsageError(Exception):
    """A command line that cannot be sent (exit 2)."""


def _json_arg(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def _rate_arg(raw: str) -> dict[str, Any]:
    """--rate N/SECONDS, e.g. 10/1 (ten starts a second) or 100/60."""
    count, sep, window = raw.partition("/")
    try:
        if not sep:
            raise ValueError(raw)
        return {"count": int(count), "window_s": float(window)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not COUNT/SECONDS (e.g. 10/1)") from None


def _sub(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    add_api_args(parser)
    return parser


def add_ops_commands(sub: Any) -> None:
    """Add the operator commands to the ``baton`` command."""
    queues = sub.add_parser("queues", help="queues: depth, age, throughput; pause, resume, purge (HTTP API)")
    qsub = queues.add_subparsers(dest="queues_command", required=True)
    _sub(qsub, "ls", "list queues")
    for verb, text in (("get", "show one queue"), ("pause", "stop nodes leasing a queue's runs"),
                       ("resume", "let nodes lease a queue's runs again")):
        _sub(qsub, verb, text).add_argument("queue")
    purge = _sub(qsub, "purge", "cancel every queued run of a queue")
    purge.add_argument("queue")
    purge.add_argument("--yes", action="store_true", help="yes, cancel them (required)")

    schedules = sub.add_parser("schedules", help="cron schedules: list, set, pause, resume, trigger, backfill")
    ssub = schedules.add_subparsers(dest="schedules_command", required=True)
    _sub(ssub, "ls", "list schedules")
    for verb, text in (("get", "show one schedule"), ("rm", "delete a schedule"), ("pause", "stop firing"),
                       ("resume", "fire again from the next tick"), ("trigger", "fire a tick now")):
        _sub(ssub, verb, text).add_argument("name")
    put = _sub(ssub, "set", "create or replace a schedule")
    put.add_argument("name")
    put.add_argument("--job", required=True)
    put.add_argument("--cron", required=True, help="5 fields, or 6 with seconds first")
    put.add_argument("--timezone", default="UTC", help="IANA name (default UTC)")
    put.add_argument("--overlap", choices=["allow", "skip", "cancel"], default="allow")
    put.add_argument("--catch-up", choices=["skip", "run_once"], default="skip")
    put.add_argument("--input", type=_json_arg, default=None, help="JSON input of each run")
    put.add_argument("--options", type=_json_arg, default=None, help="JSON trigger options of each run")
    fill = _sub(ssub, "backfill", "fire the ticks of a past time range")
    fill.add_argument("name")
    fill.add_argument("--start", required=True, help="ISO-8601 with a zone, e.g. 2026-01-01T00:00:00Z")
    fill.add_argument("--end", required=True)

    nodes = sub.add_parser("nodes", help="nodes: heartbeat, slots, leases, version; drain")
    nsub = nodes.add_subparsers(dest="nodes_command", required=True)
    _sub(nsub, "ls", "list nodes")
    _sub(nsub, "drain", "ask a node to drain and exit").add_argument("node")

    limits = sub.add_parser("limits", help="a job's concurrency and rate limits, and shared limits, at runtime")
    lsub = limits.add_subparsers(dest="limits_command", required=True)
    _sub(lsub, "get", "show a job's limits").add_argument("job")
    _sub(lsub, "clear", "drop the runtime override").add_argument("job")
    lset = _sub(lsub, "set", "override a job's limits on every node (an option left out is no limit)")
    lset.add_argument("job")
    lset.add_argument("--max-concurrency", type=int, default=0)
    lset.add_argument("--max-per-key", type=int, default=0, help="max concurrency per concurrency key")
    lset.add_argument("--rate", type=_rate_arg, default=None, help="COUNT/SECONDS, e.g. 10/1")
    lset.add_argument("--rate-per-key", type=_rate_arg, default=None, help="COUNT/SECONDS per rate key")
    _sub(lsub, "shared-ls", "list shared limits (named pools and rates jobs share)")
    _sub(lsub, "shared-get", "show a shared limit").add_argument("name")
    _sub(lsub, "shared-clear", "drop a shared limit's runtime override").add_argument("name")
    sset = _sub(lsub, "shared-set", "override a shared limit on every node (an option left out is no limit)")
    sset.add_argument("name")
    sset.add_argument("--pool", type=int, default=0, help="most runs of its pool's jobs executing at once")
    sset.add_argument("--rate", type=_rate_arg, default=None, help="COUNT/SECONDS starts of its jobs")

    admission = sub.add_parser("admission", help="max_queued of a job or queue: the runs admitted, not yet started")
    asub = admission.add_subparsers(dest="admission_command", required=True)
    for verb, text in (("get", "show the cap in force and the runs it counts"),
                       ("set", "cap the job's or queue's runs not yet started, on every node"),
                       ("clear", "remove the runtime cap (a job's code max_queued applies again)")):
        parser = _sub(asub, verb, text)
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--job")
        scope.add_argument("--queue")
        if verb == "set":
            parser.add_argument("max_queued", type=int)

    bulk = sub.add_parser("bulk", help="cancel or replay many runs by filter, in the background")
    bsub = bulk.add_subparsers(dest="bulk_command", required=True)
    for verb in ("cancel", "replay"):
        act = _sub(bsub, verb, f"{verb} every matching run ({'live' if verb == 'cancel' else 'finished'} ones)")
        act.add_argument("--status", help="comma-separated statuses")
        for name in ("job", "queue", "tag", "label", "batch-id", "triggered-by", "created-after", "created-before"):
            act.add_argument(f"--{name}")
        act.add_argument("--limit", type=int, default=None, help="most runs (default and at most 100000)")
        act.add_argument("--wait", action="store_true", help="follow its progress until it ends")
    _sub(bsub, "ls", "list bulk actions")
    for verb, text in (("get", "show an action's progress"), ("stop", "stop an action")):
        _sub(bsub, verb, text).add_argument("action_id")

    rejected = sub.add_parser("rejected", help="stream entries the intake rejected, with why (HTTP API)")
    rjsub = rejected.add_subparsers(dest="rejected_command", required=True)
    rls = _sub(rjsub, "ls", "list rejected stream entries, newest first")
    rls.add_argument("--limit", type=int, default=20, help="entries per page (at most 100)")
    rls.add_argument("--cursor", help="continue from a previous page's cursor")


async def run_ops_command(ns: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run an operator command; returns the exit code."""
    out = out or sys.stdout
    try:
        async with api_client(ns) as api:
            handler = {"queues": _queues, "schedules": _schedules, "nodes": _nodes, "limits": _limits,
                       "admission": _admission, "bulk": _bulk, "rejected": _rejected}[ns.command]
            code = await handler(api, ns, out)
            if note := api.partial_note():
                print(f"baton: {note}", file=sys.stderr)
            return code
    except ApiClientError as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 2


async def _listing(api: ApiClient, path: str, ns: argparse.Namespace, out: TextIO,
                   row: Callable[[dict[str, Any]], list[str]], headers: list[str]) -> int:
    """A list endpoint: JSON with --json, else one table row per item."""
    page = await api.get(path)
    if ns.json:
        _dump(page, out)
    else:
        _table([row(item) for item in page["data"]], headers, out)
    return 0


def _p(name: str) -> str:
    return quote(name, safe="")


def _age(ms: int | None) -> str:
    if ms is None:
        return "-"
    seconds = ms / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


QUEUE_HEADERS = ["QUEUE", "PAUSED", "QUEUED", "DELAYED", "EXECUTING", "WAITING", "PAUSED-RUNS", "OLDEST",
                 "DONE/MIN (LAST 5)", "DONE LAST HOUR"]


def _queue_row(q: dict[str, Any]) -> list[str]:
    c = q["counts"]
    approx = "" if q.get("counts_exact", True) else "~"
    recent = q["throughput"]["points"][-5:]
    return [q["name"], "yes" if q["paused"] else "no", str(c["queued"]), approx + str(c["delayed"]),
            approx + str(c["executing"]), approx + str(c["waiting"]), approx + str(c["paused"]),
            _age(q["oldest_queued_age_ms"]) if c["queued"] else "-", " ".join(str(n) for n in recent),
            str(q["throughput"]["last_hour_total"])]


async def _queues(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    cmd = ns.queues_command
    if cmd == "ls":
        return await _listing(api, "/v1/queues", ns, out, _queue_row, QUEUE_HEADERS)
    path = f"/v1/queues/{_p(ns.queue)}"
    if cmd == "purge":
        if not ns.yes:
            raise UsageError(f"purge cancels every queued run of {ns.queue}: add --yes to do it")
        total = {"queue": ns.queue, "purged": 0, "skipped": 0, "remaining": 0, "has_more": True}
        while total["has_more"]:
            result = await api.post(path + "/purge", confirm=ns.queue, limit=10_000)
            for key in ("purged", "skipped"):
                total[key] += result[key]
            total["remaining"], total["has_more"] = result["remaining"], result["has_more"] and result["purged"] > 0
        if ns.json:
            _dump(total, out)
        else:
            out.write(f"purged {total['purged']} queued run(s) of {ns.queue}"
                      f" ({total['skipped']} left the queue meanwhile, {total['remaining']} queued now)\n")
        return 0
    queue = await (api.get(path) if cmd == "get" else api.post(f"{path}/{cmd}"))
    if ns.json:
        _dump(queue, out)
    else:
        _table([_queue_row(queue)], QUEUE_HEADERS, out)
    return 0


SCHEDULE_HEADERS = ["NAME", "JOB", "CRON", "TIMEZONE", "PAUSED", "NEXT FIRE", "FIRED", "SKIPPED", "MISSED"]


def _schedule_row(s: dict[str, Any]) -> list[str]:
    return [s["name"], s["job"], s["expression"], s["timezone"], "yes" if s["paused"] else "no",
            _when(s.get("next_fire_at")), str(s["fired_count"]), str(s["skipped_count"]), str(s["missed_count"])]


async def _schedules(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    cmd = ns.schedules_command
    if cmd == "ls":
        return await _listing(api, "/v1/schedules", ns, out, _schedule_row, SCHEDULE_HEADERS)
    path = f"/v1/schedules/{_p(ns.name)}"
    result: Any
    if cmd == "set":
        body = {"job": ns.job, "expression": ns.cron, "timezone": ns.timezone, "overlap": ns.overlap,
                "catch_up": ns.catch_up, "input": ns.input, "options": ns.options or {}}
        result = await api.request("PUT", path, body=body)
    elif cmd == "get":
        result = await api.get(path)
    elif cmd == "rm":
        result = await api.delete(path)
    elif cmd == "backfill":
        result = await api.post(path + "/backfill", {"start": ns.start, "end": ns.end})
    else:
        result = await api.post(f"{path}/{cmd}")
    if ns.json:
        _dump(result, out)
    elif cmd == "rm":
        out.write(f"deleted schedule {result['name']}\n")
    elif cmd == "trigger":
        out.write(f"{result['run_id']}\n" if result["run_id"] else "skipped (overlap policy)\n")
    elif cmd == "backfill":
        out.write(f"{result['ticks']} tick(s): {result['created']} run(s) started, {result['existing']} existed"
                  + (f"; truncated: go on with --start {result['next_start']}" if result["truncated"] else "")
                  + "\n")
    else:
        _table([_schedule_row(result)], SCHEDULE_HEADERS, out)
    return 0


def _node_row(n: dict[str, Any]) -> list[str]:
    def known(value: Any) -> str:
        return "?" if value is None else str(value)

    return [n["id"], "yes" if n["alive"] else "no", _age(n["heartbeat_age_ms"]),
            f"{known(n['slots_used'])}/{n['slots_total']}", known(n["leases_held"]), n["version"] or "?",
            "draining" if n["draining"] else ("requested" if n["drain_requested"] else ""), ",".join(n["queues"]),
            ",".join(f"{k}={v}" for k, v in sorted(n.get("labels", {}).items()))]


async def _nodes(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    if ns.nodes_command == "ls":
        return await _listing(api, "/v1/nodes", ns, out, _node_row,
                              ["NODE", "ALIVE", "HEARTBEAT", "SLOTS", "LEASES", "VERSION", "DRAIN", "QUEUES", "LABELS"])
    node = await api.post(f"/v1/nodes/{_p(ns.node)}/drain")
    emit(ns, out, node, f"node {node['id']} will drain and exit at its next heartbeat\n")
    return 0


async def _rejected(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    page = await api.get("/v1/rejected", limit=ns.limit, cursor=ns.cursor)
    if ns.json:
        _dump(page, out)
        return 0
    _table([[_when(r["rejected_at"]), r["entry_id"], r["reason"], r["error"]] for r in page["data"]],
           ["REJECTED", "ENTRY", "REASON", "ERROR"], out)
    if page["next_cursor"]:
        out.write(f"more: --cursor {page['next_cursor']}\n")
    return 0


def _limits_rows(limits: dict[str, Any]) -> list[list[str]]:
    def show(lim: dict[str, Any] | None) -> list[str]:
        if lim is None:
            return ["-"] * 4

        return [str(lim["max_concurrency"] or "-"), str(lim["max_concurrency_per_key"] or "-"),
                _rate_text(lim["rate_limit"]), _rate_text(lim["rate_limit_per_key"])]

    return [[name, *show(limits[name])] for name in ("registered", "override", "effective")]


def _rate_text(r: dict[str, Any] | None) -> str:
    return f"{r['count']}/{r['window_s']:g}s" if r else "-"


SHARED_HEADERS = ["LIMIT", "POOL", "RATE", "OVERRIDDEN", "IN POOL", "JOBS"]


def _shared_row(limit: dict[str, Any]) -> list[str]:
    effective = limit["effective"]
    return [limit["name"], str(effective["pool_size"] or "-"), _rate_text(effective["rate_limit"]),
            "yes" if limit["override"] else "no", str(limit["pool_leased"]), ",".join(limit["jobs"]) or "-"]


async def _get_clear_or_set(api: ApiClient, path: str, verb: str, body: Callable[[], dict[str, Any]]) -> Any:
    """A limits resource read (``get``), cleared (``clear``) or replaced with ``body()`` (``set``: only its
    parser has the options the body is made of)."""
    if verb == "get":
        return await api.get(path)
    if verb == "clear":
        return await api.delete(path)
    return await api.request("PUT", path, body=body())


async def _shared_limits(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    if ns.limits_command == "shared-ls":
        return await _listing(api, "/v1/limits", ns, out, _shared_row, SHARED_HEADERS)
    limit = await _get_clear_or_set(api, f"/v1/limits/{_p(ns.name)}", ns.limits_command.removeprefix("shared-"),
                                    lambda: {"pool_size": ns.pool, "rate_limit": ns.rate})
    if ns.json:
        _dump(limit, out)
    else:
        _table([_shared_row(limit)], SHARED_HEADERS, out)
    return 0


async def _limits(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    if ns.limits_command.startswith("shared-"):
        return await _shared_limits(api, ns, out)
    limits = await _get_clear_or_set(api, f"/v1/jobs/{_p(ns.job)}/limits", ns.limits_command, lambda: {
        "max_concurrency": ns.max_concurrency, "max_concurrency_per_key": ns.max_per_key,
        "rate_limit": ns.rate, "rate_limit_per_key": ns.rate_per_key})
    if ns.json:
        _dump(limits, out)
    else:
        _table(_limits_rows(limits), [limits["job"].upper(), "MAX", "MAX/KEY", "RATE", "RATE/KEY"], out)
    return 0


async def _admission(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    path = f"/v1/jobs/{_p(ns.job)}/admission" if ns.job else f"/v1/queues/{_p(ns.queue)}/admission"
    if ns.admission_command == "get":
        shown = await api.get(path)
    else:
        shown = await api.request("PUT", path, body={
            "max_queued": ns.max_queued if ns.admission_command == "set" else None})
    if ns.json:
        _dump(shown, out)
    else:
        _table([[shown["scope"], shown["name"], str(shown["max_queued"] or "-"), str(shown["admitted"])]],
               ["SCOPE", "NAME", "MAX_QUEUED", "ADMITTED"], out)
    return 0


BULK_HEADERS = ["ID", "ACTION", "STATUS", "PROCESSED", "SUCCEEDED", "FAILED", "CREATED", "FINISHED"]


def _bulk_row(a: dict[str, Any]) -> list[str]:
    # the runs it acted on; "(limit)" once it stopped at its cap (shown as "0/100000", the count read as
    # progress toward the default cap)
    processed = f"{a['processed']} (limit)" if a["processed"] >= a["limit"] else str(a["processed"])
    return [a["id"], a["action"], a["status"], processed, str(a["succeeded"]),
            str(a["failed"]), _when(a["created_at"]), _when(a.get("finished_at"))]


async def _bulk(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    cmd = ns.bulk_command
    if cmd == "ls":
        return await _listing(api, "/v1/bulk-actions", ns, out, _bulk_row, BULK_HEADERS)
    if cmd in ("get", "stop"):
        path = f"/v1/bulk-actions/{_p(ns.action_id)}"
        action = await (api.get(path) if cmd == "get" else api.delete(path))
    else:
        fltr: dict[str, Any] = {k: getattr(ns, k) for k in ("job", "queue", "tag", "label", "batch_id",
                                                             "triggered_by", "created_after", "created_before")
                                if getattr(ns, k) is not None}
        if ns.status:
            fltr["status"] = ns.status.split(",")
        body: dict[str, Any] = {"action": cmd, "filter": fltr}
        if ns.limit is not None:
            body["limit"] = ns.limit
        action = await api.post("/v1/bulk-actions", body)
        while ns.wait and action["status"] == "running":
            await asyncio.sleep(0.5)
            action = await api.get(f"/v1/bulk-actions/{action['id']}")
    if ns.json:
        _dump(action, out)
    else:
        _table([_bulk_row(action)], BULK_HEADERS, out)
        for err in action.get("errors") or []:
            out.write(f"  {err['id']}: {err['error']}\n")
    return 0 if action["status"] != "failed" and not (getattr(ns, "wait", False) and action["failed"]) else 1
