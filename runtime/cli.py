"""The ``baton`` command: ``baton worker`` runs a node, ``baton api`` the HTTP API alone;
``baton runs``/``baton dlq`` manage runs over the API; ``baton submit``/``baton get`` help by hand."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from dataclasses import fields
from typing import Any

import orjson
from redis.exceptions import RedisError

from .api.client import ApiClientError
from .api.commands import add_api_args, add_commands, api_client, run_command
from .app import Baton
from .errors import BatonError
from .logs import startup_failure
from .settings import ENV_PREFIX, Settings, descriptions, env_warnings
from .statuses import TERMINAL
from .worker import load_app, run_api, run_worker

__all__ = ["build_parser", "main", "settings_from"]


def _settings_args(parser: argparse.ArgumentParser) -> None:
    """A flag for every Settings field, described from Settings itself; booleans also take --no-X."""
    group = parser.add_argument_group("settings (each also a BATON_* variable; a flag wins)")
    described = descriptions()
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        default = "" if f.default in ("", 0) and f.type != "bool" else f" Default: {f.default}."
        text = f"{described.get(f.name, '')} [{ENV_PREFIX}{f.name.upper()}]{default}".replace("%", "%%")
        if str(f.type) == "bool":
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            cast = {"int": int, "float": float}.get(str(f.type), str)
            group.add_argument(flag, dest=f.name, type=cast, default=None, help=text, metavar=f.name.upper())


def _json_text(raw: str) -> str:
    """--input: checked to be JSON when parsed, so a typo is a usage error."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    return raw


def _seconds(raw: str) -> float:
    """--wait: a finite number of seconds, at least 0."""
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``baton`` command line: every subcommand and its flags."""
    parser = argparse.ArgumentParser(prog="baton", description="Durable background jobs on Redis.")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run a node: intake, leaser, executors")
    worker.add_argument("--app", default="examples.jobs:app", help="module:attribute of the Baton app")
    _settings_args(worker)
    submit = sub.add_parser("submit", help="trigger a run and print its id")
    submit.add_argument("job")
    submit.add_argument("--input", type=_json_text, default="null", help="JSON input")
    submit.add_argument("--wait", type=_seconds, default=0, help="seconds to wait for the result")
    _settings_args(submit)
    get = sub.add_parser("get", help="print a run as JSON")
    get.add_argument("run_id")
    _settings_args(get)
    # submit/get talk to the HTTP API instead of Redis when an API URL is given
    add_api_args(submit, json_flag=False)
    add_api_args(get, json_flag=False)
    api = sub.add_parser("api", help="run the HTTP API alone (no executors)")
    api.add_argument("--app", default=None, help="module:attribute of a Baton app (optional: jobs come from Redis)")
    _settings_args(api)
    add_commands(sub)
    return parser


def settings_from(ns: argparse.Namespace) -> Settings:
    """Settings from BATON_* variables, with the flags given on the command line applied over them."""
    overrides = {f.name: getattr(ns, f.name) for f in fields(Settings) if getattr(ns, f.name, None) is not None}
    return Settings.from_env(**overrides)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand."""
    ns = build_parser().parse_args(argv)
    if ns.command not in ("worker", "api"):  # those log them, once logging is set up
        for warning in env_warnings():
            print(f"baton: warning: {warning}", file=sys.stderr)
    if ns.command in ("runs", "dlq", "apikey"):
        return asyncio.run(run_command(ns))
    try:
        settings = settings_from(ns)
        if ns.command == "worker":
            app = load_app(ns.app)
            return run_worker(app, settings)
        if ns.command == "api":
            return run_api(load_app(ns.app) if ns.app else Baton(settings), settings)
        if ns.api_url or os.environ.get("BATON_API_URL"):
            return asyncio.run(_api_client_command(ns))
        return asyncio.run(_client_command(ns, settings))
    except BatonError as exc:
        if ns.command in ("worker", "api"):  # a daemon's log pipeline parses its stderr
            fmt = getattr(ns, "log_format", None) or os.environ.get(f"{ENV_PREFIX}LOG_FORMAT", "")
            startup_failure(str(exc), fmt, type(exc).__name__)
        else:
            print(f"baton: {exc}", file=sys.stderr)
        return 2
    except RedisError as exc:  # submit/get talk to Redis directly; redis-py's messages carry no password
        print(f"baton: Redis: {exc}", file=sys.stderr)
        return 1


async def _api_client_command(ns: argparse.Namespace) -> int:
    """submit/get through the HTTP API."""
    try:
        async with api_client(ns) as api:
            if ns.command == "submit":
                created = await api.post(f"/v1/jobs/{ns.job}/trigger",
                                         {"input": orjson.loads(ns.input), "triggered_by": "manual"})
                run_id = created["id"]
                if not ns.wait:
                    print(run_id)
                    return 0
                loop = asyncio.get_running_loop()
                deadline = loop.time() + ns.wait
                delay = 0.02
                while True:
                    run = await api.get(f"/v1/runs/{run_id}")
                    if run["status"] in TERMINAL:
                        _print(run)
                        return 0
                    if loop.time() > deadline:
                        print(f"baton: run {run_id} still {run['status']} after {ns.wait}s", file=sys.stderr)
                        return 1
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
            _print(await api.get(f"/v1/runs/{ns.run_id}"))
            return 0
    except ApiClientError as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 1


async def _client_command(ns: argparse.Namespace, settings: Settings) -> int:
    async with Baton(settings) as app:
        if ns.command == "submit":
            run_id = await app.trigger(ns.job, orjson.loads(ns.input))
            if ns.wait:
                run = await app.wait_for(run_id, ns.wait)
                _print(run.to_dict())
            else:
                print(run_id)
            return 0
        found = await app.get_run(ns.run_id)
        if found is None:
            print(f"baton: run {ns.run_id} not found", file=sys.stderr)
            return 1
        _print(found.to_dict())
        return 0


def _print(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")
