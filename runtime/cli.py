"""The ``baton`` command: ``baton worker`` runs a node; ``baton submit``/``baton get`` help by hand."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import fields
from typing import Any

import orjson

from .app import Baton
from .errors import BatonError
from .settings import Settings
from .worker import load_app, run_worker

__all__ = ["main"]


def _settings_args(parser: argparse.ArgumentParser) -> None:
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        if kind == "bool":
            parser.add_argument(flag, dest=f.name, action="store_const", const=True, default=None)
        else:
            cast = {"int": int, "float": float}.get(kind, str)
            parser.add_argument(flag, dest=f.name, type=cast, default=None, help=argparse.SUPPRESS)


def _settings(ns: argparse.Namespace) -> Settings:
    overrides = {f.name: getattr(ns, f.name) for f in fields(Settings) if getattr(ns, f.name, None) is not None}
    return Settings.from_env(**overrides)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand."""
    parser = argparse.ArgumentParser(prog="baton", description="Durable background jobs on Redis.")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run a node: intake, leaser, executors")
    worker.add_argument("--app", default="examples.jobs:app", help="module:attribute of the Baton app")
    _settings_args(worker)
    submit = sub.add_parser("submit", help="trigger a run and print its id")
    submit.add_argument("job")
    submit.add_argument("--input", default="null", help="JSON input")
    submit.add_argument("--wait", type=float, default=0, help="seconds to wait for the result")
    _settings_args(submit)
    get = sub.add_parser("get", help="print a run as JSON")
    get.add_argument("run_id")
    _settings_args(get)
    ns = parser.parse_args(argv)
    try:
        settings = _settings(ns)
        if ns.command == "worker":
            app = load_app(ns.app)
            return run_worker(app, settings)
        return asyncio.run(_client_command(ns, settings))
    except BatonError as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 2


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
