"""The CLI's API commands: ``baton runs ...``, ``baton dlq ...``, ``baton apikey``.

They talk to the HTTP API: URL from ``--api-url`` or ``BATON_API_URL`` (default
http://127.0.0.1:8480), key from ``--api-key`` or ``BATON_API_KEY`` (default: the key
``./dev up`` keeps in ``.baton/api-dev-key``, when there is one). Output is a
table for people, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from typing import Any, TextIO

import orjson
from yarl import URL

from ..devnode import dev_api_url, dev_key
from ..errors import ConfigError
from ..settings import Settings
from .auth import hash_key, new_hatchet_token, new_key
from .client import ApiClient, ApiClientError, SseEvent
from .hatchet_public import tenant_of

__all__ = ["DEFAULT_URL", "add_api_args", "add_commands", "api_client", "emit", "run_command"]

DEFAULT_URL = "http://127.0.0.1:8480"


def add_api_args(parser: argparse.ArgumentParser, json_flag: bool = True, url_help: str | None = None) -> None:
    """--api-url, --api-key (and --json)."""
    parser.add_argument("--api-url", default=None, help=url_help or "API URL (BATON_API_URL; default: the "
                        f"development node of this checkout, else {DEFAULT_URL})")
    parser.add_argument("--api-key", default=None, help="API key (BATON_API_KEY; default: .baton/api-dev-key)")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def api_client(ns: argparse.Namespace) -> ApiClient:
    """A client from the flags and the environment; without them, the API and the key of this checkout's
    development node (``./dev up``: see runtime/devnode.py), else the default URL."""
    url = ns.api_url or os.environ.get("BATON_API_URL")
    key = ns.api_key or os.environ.get("BATON_API_KEY")
    if not url or not key:
        try:
            settings = Settings.from_env()
        except ConfigError:  # a bad setting is reported by the commands that use settings
            settings = Settings()
        url = url or dev_api_url(settings)
        key = key or dev_key(settings)
    if url and ((parsed := URL(url)).user or parsed.password):  # (aiohttp refuses the key beside them, in its words)
        raise ConfigError("the API URL (--api-url, BATON_API_URL) must not carry a user or password: the API "
                          "takes a key (--api-key, BATON_API_KEY)")
    assumed = []
    if not url:
        assumed.append(f"no API URL was given (--api-url, BATON_API_URL) and no development node (./dev up) "
                       f"runs in a checkout here or above, so {DEFAULT_URL} was tried")
    if not key:
        assumed.append("no API key was given (--api-key, BATON_API_KEY) and no development key (.baton/"
                       "api-dev-key) was found here or above")
    return ApiClient(url or DEFAULT_URL, key, assumed="; ".join(assumed))


def add_commands(sub: Any) -> None:
    """Add ``runs``, ``dlq`` and ``apikey`` to the ``baton`` command."""
    runs = sub.add_parser("runs", help="list, inspect, cancel, replay and follow runs (HTTP API)")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    ls = rsub.add_parser("ls", help="list runs, newest first")
    ls.add_argument("--status", help="comma-separated statuses")
    for name in ("job", "queue", "tag", "label", "batch-id", "triggered-by"):
        ls.add_argument(f"--{name}", help=f"filter by {name.replace('-', ' ')}" + (" (name=value)"
                                                                                    if name == "label" else ""))
    ls.add_argument("--limit", type=int, default=20, help="runs per page (at most 100)")
    ls.add_argument("--cursor", help="continue from a previous page's cursor")
    ls.add_argument("--view", help="with --json: native, durably, trigger, hatchet or strait")
    add_api_args(ls)
    get = rsub.add_parser("get", help="show one run")
    get.add_argument("run_id")
    get.add_argument("--view", help="with --json: native, durably, trigger, hatchet or strait")
    add_api_args(get)
    cancel = rsub.add_parser("cancel", help="cancel runs")
    cancel.add_argument("run_ids", nargs="+")
    add_api_args(cancel)
    replay = rsub.add_parser("replay", help="start a finished run again as a new run")
    replay.add_argument("run_id")
    add_api_args(replay)
    tail = rsub.add_parser("tail", help="follow a run's events live until it finishes")
    tail.add_argument("run_id")
    add_api_args(tail)
    from .commands_messages import add_run_message_commands  # it imports this module's helpers

    add_run_message_commands(rsub)
    dlq = sub.add_parser("dlq", help="the dead letter queue (HTTP API)")
    dsub = dlq.add_subparsers(dest="dlq_command", required=True)
    dls = dsub.add_parser("ls", help="list dead-lettered runs")
    dls.add_argument("--limit", type=int, default=20)
    dls.add_argument("--job")
    add_api_args(dls)
    drp = dsub.add_parser("replay", help="replay dead-lettered runs (each at most once)")
    drp.add_argument("run_ids", nargs="*")
    drp.add_argument("--all", action="store_true", help="every dead-lettered run not replayed yet (up to 100)")
    add_api_args(drp)
    key = sub.add_parser("apikey", help="make a new API key for a project (prints the key and its settings entry)")
    key.add_argument("project")
    key.add_argument("--hatchet", metavar="API_URL",
                     help="make it a token hatchet-sdk takes (HATCHET_CLIENT_TOKEN), for the API at API_URL")


async def run_command(ns: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``runs``/``dlq``/``apikey``; returns the exit code."""
    out = out or sys.stdout
    if ns.command == "apikey":
        key = new_hatchet_token(tenant_of(ns.project), ns.hatchet) if ns.hatchet else new_key()
        out.write(f"key:      {key}\nsettings: BATON_API_KEYS={ns.project}:{hash_key(key)}\n"
                  "(keep the key secret; only its hash goes into the settings, comma-separated with others)\n")
        return 0
    try:
        async with api_client(ns) as api:
            code = await (_runs(api, ns, out) if ns.command == "runs" else _dlq(api, ns, out))
            if note := api.partial_note():
                print(f"baton: {note}", file=sys.stderr)
            return code
    except ApiClientError as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 1


def _dump(obj: Any, out: TextIO) -> None:
    out.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def emit(ns: argparse.Namespace, out: TextIO, value: Any, people: str) -> None:
    """An answer as JSON with --json, else the line(s) for people."""
    if ns.json:
        _dump(value, out)
    else:
        out.write(people)


def _when(text: str | None) -> str:
    if not text:
        return "-"
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return text


def _table(rows: list[list[str]], headers: list[str], out: TextIO) -> None:
    widths = [min(max([len(h), *(len(r[i]) for r in rows)]), 40) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        # every column but the last is cut at 40 characters; the last (often a message) is shown whole
        head = [(c if len(c) <= w else c[: w - 1] + "…").ljust(w) for c, w in zip(cells[:-1], widths, strict=False)]
        return "  ".join([*head, cells[-1]]).rstrip()

    out.write(line(headers) + "\n")
    for r in rows:
        out.write(line(r) + "\n")


def _run_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in runs:
        progress = r.get("progress") or {}
        prog = ""
        if isinstance(progress, dict) and progress.get("current") is not None:
            prog = f"{progress['current']}/{progress['total']}" if progress.get("total") else str(progress["current"])
        rows.append([r["id"], r["job"], r["status"], str(r.get("attempt", "")), _when(r.get("created_at")),
                     _when(r.get("finished_at")), prog])
    return rows


RUN_HEADERS = ["ID", "JOB", "STATUS", "ATTEMPT", "CREATED", "FINISHED", "PROGRESS"]


async def _runs(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    cmd = ns.runs_command
    if cmd == "ls":
        params = {"status": ns.status, "job": ns.job, "queue": ns.queue, "tag": ns.tag, "label": ns.label,
                  "batch_id": ns.batch_id, "triggered_by": ns.triggered_by, "limit": ns.limit,
                  "cursor": ns.cursor, "view": ns.view if ns.json else None}
        page = await api.get("/v1/runs", **params)
        if ns.json:
            _dump(page, out)
        else:
            _table(_run_rows(page["data"]), RUN_HEADERS, out)
            if page.get("next_cursor"):
                out.write(f"more: --cursor {page['next_cursor']}\n")
        return 0
    if cmd == "get":
        run = await api.get(f"/v1/runs/{ns.run_id}", view=ns.view if ns.json else None)
        if ns.json:
            _dump(run, out)
            return 0
        for name in ("id", "job", "queue", "status", "attempt", "max_attempts", "priority", "project",
                     "triggered_by", "created_at", "started_at", "finished_at", "parent_id", "replay_of"):
            value = run.get(name)
            if value is not None:
                out.write(f"{name + ':':<14}{_when(value) if name.endswith('_at') else value}\n")
        for name in ("input", "output", "error", "progress"):
            if run.get(name) is not None:
                out.write(f"{name + ':':<14}{orjson.dumps(run[name]).decode()}\n")
        if run.get("attempts"):
            out.write("attempts:\n")
            for a in run["attempts"]:
                err = f"  {a['error'].get('message')}" if a.get("error") else ""
                out.write(f"  #{a['number']} {a['status']:<10} {_when(a.get('started_at'))} "
                          f"{a.get('worker_id') or ''}{err}\n")
        return 0
    if cmd == "cancel":
        result = await api.post("/v1/runs/bulk-cancel", {"run_ids": ns.run_ids})
        if ns.json:
            _dump(result, out)
        else:
            _table([[r["id"], r["status"], r.get("error") or ""] for r in result["results"]],
                   ["ID", "RESULT", "ERROR"], out)
        if not result["failed"]:
            return 0
        # each run's result is in the table (or the JSON); the failure is also the one line every error is
        first = next(r for r in result["results"] if r.get("error"))
        print(f"baton: {result['failed']} of {len(result['results'])} runs not canceled "
              f"({first['id']}: {first['error']})", file=sys.stderr)
        return 1
    if cmd == "replay":
        run = await api.post(f"/v1/runs/{ns.run_id}/replay")
        emit(ns, out, run, f"{run['id']}\n")
        return 0
    if cmd == "tail":
        return await _tail(api, ns, out)
    from .commands_messages import run_message_command

    return await run_message_command(api, ns, out)


class _Progress:
    """A one-line progress bar: redrawn in place on a terminal, one line per update otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.open = False

    def show(self, current: float, total: float | None, message: str | None) -> None:
        width = 30
        if total:
            frac = max(0.0, min(current / total, 1.0))
            filled = round(frac * width)
            text = f"[{'#' * filled}{'-' * (width - filled)}] {frac * 100:3.0f}% {current:g}/{total:g}"
        else:
            text = f"[{'?' * 3}] {current:g}"
        if message:
            text += f" {message}"
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
            self.open = True
        else:
            self.out.write(f"progress {text}\n")
        self.out.flush()

    def close(self) -> None:
        if self.open:
            self.out.write("\n")
            self.open = False


def _describe(event: SseEvent) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    inner: dict[str, Any] = data["data"] if isinstance(data.get("data"), dict) else {}
    if event.event == "log":
        extra = f" {orjson.dumps(inner['data']).decode()}" if inner.get("data") else ""
        step = f" [{inner['stepName']}]" if inner.get("stepName") else ""
        return f"log      {inner.get('level', 'info')!s:<5}{step} {inner.get('message', '')}{extra}"
    return f"{event.event:<8} {data.get('message', '')}"


async def _tail(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    bar = _Progress(out)
    final = "unknown"
    async for event in api.events(f"/v1/runs/{ns.run_id}/stream"):
        if ns.json:
            out.write(orjson.dumps({"event": event.event, "id": event.id, "data": event.data}).decode() + "\n")
            out.flush()
        if event.event == "end":
            final = str(event.data.get("status")) if isinstance(event.data, dict) else "unknown"
            break
        if ns.json:
            continue
        data = event.data if isinstance(event.data, dict) else {}
        if event.event == "progress" and isinstance(data.get("data"), dict):
            p = data["data"]
            bar.show(float(p.get("current") or 0), float(p["total"]) if p.get("total") else None, p.get("message"))
            continue
        bar.close()
        when = _when(data.get("created_at"))[11:] if data.get("created_at") else ""
        out.write(f"{when} {_describe(event)}\n")
        out.flush()
    bar.close()
    if not ns.json:
        out.write(f"run {ns.run_id} {final}\n")
    return 0 if final == "completed" else 1


async def _dlq(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    if ns.dlq_command == "ls":
        page = await api.get("/v1/runs/dlq", limit=ns.limit, job=ns.job)
        if ns.json:
            _dump(page, out)
        else:
            rows = [[r["id"], r["job"], str(r.get("attempt", "")), _when(r.get("finished_at")),
                     ((r.get("error") or {}).get("message") or "")[:60], r.get("replayed_as") or ""]
                    for r in page["data"]]
            _table(rows, ["ID", "JOB", "ATTEMPTS", "DEAD-LETTERED", "ERROR", "REPLAYED AS"], out)
        return 0
    if not ns.run_ids and not ns.all:
        print("baton: give run ids or --all", file=sys.stderr)
        return 2
    result = await api.post("/v1/runs/bulk-dlq-replay", {"run_ids": ns.run_ids} if ns.run_ids else {})
    if ns.json:
        _dump(result, out)
    else:
        _table([[r["id"], r["status"], r.get("new_run_id") or "", r.get("error") or ""] for r in result["results"]],
               ["ID", "RESULT", "NEW RUN", "ERROR"], out)
    return 0 if result["failed"] == 0 else 1
