"""The ``baton`` command: ``baton worker`` runs a node, ``baton api`` the HTTP API alone;
``baton runs``/``baton dlq`` manage runs and ``baton queues``/``schedules``/``nodes``/``limits``/``bulk``
operate the deployment over the API; ``baton submit``/``get``/``redis-cli`` help by hand."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
from dataclasses import fields
from typing import NoReturn

from redis.exceptions import RedisError

from .api.commands import add_api_args, add_commands, run_command
from .api.commands_hooks import add_webhook_commands, run_webhook_command
from .api.commands_messages import add_token_commands, run_token_command
from .api.commands_ops import OPS_COMMANDS, add_ops_commands, run_ops_command
from .app import Baton
from .cli_client import run_client_command, use_api
from .completion import SHELLS, completion_script
from .errors import BatonError, ConfigError
from .json_values import decode
from .logs import startup_failure
from .settings import ENV_PREFIX, Settings, descriptions, env_warnings
from .stop_signals import StopSignals
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
    """--input: read as any door reads JSON (runtime/json_values.py) when parsed, so a typo is a usage error."""
    try:
        decode(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("is ")) from exc
    return raw


def _seconds(raw: str) -> float:
    """--wait: a finite number of seconds, at least 0."""
    try:
        value = float(raw)
    except ValueError:  # (argparse would name this function in its message)
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds >= 0")
    return value


#: the app a worker runs when no --app is given: the example jobs (what ./dev up runs)
EXAMPLE_APP = "examples.jobs:app"


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the usage of a command with every setting as a flag is
    forty lines that hide the one that matters)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``baton`` command line: every subcommand and its flags."""
    parser = Parser(prog="baton", description="Durable background jobs on Redis.")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run a node: intake, leaser, executors")
    worker.add_argument("--app", default=EXAMPLE_APP, help=f"module:attribute of the Baton app (default: the "
                        f"example jobs, {EXAMPLE_APP})")
    _settings_args(worker)
    submit = sub.add_parser("submit", help="trigger a run and print its id")
    submit.add_argument("job")
    submit.add_argument("--input", type=_json_text, default="null", help="JSON input")
    submit.add_argument("--wait", type=_seconds, default=0, help="seconds to wait for the result")
    _settings_args(submit)
    get = sub.add_parser("get", help="print a run as JSON (the API's native run)")
    get.add_argument("run_id")
    _settings_args(get)
    rcli = sub.add_parser("redis-cli", help="send one command to the node's Redis (found as get finds it)")
    rcli.add_argument("args", nargs="+", metavar="ARG", help="the command and its arguments, as redis-cli takes them")
    _settings_args(rcli)
    # submit/get talk to the HTTP API instead of Redis when an API URL is given
    through = ("the HTTP API at this URL instead of Redis (BATON_API_URL; default: Redis, found as redis-cli finds "
               "it, else the development node's API)")
    add_api_args(submit, json_flag=False, url_help=through)
    add_api_args(get, json_flag=False, url_help=through)
    api = sub.add_parser("api", help="run the HTTP API alone (no executors)")
    api.add_argument("--app", default=None, help="module:attribute of a Baton app (optional: jobs come from Redis)")
    _settings_args(api)
    add_commands(sub)
    add_ops_commands(sub)
    add_webhook_commands(sub)
    add_token_commands(sub)
    completion = sub.add_parser("completion", help="print a shell completion script (bash or zsh)")
    completion.add_argument("shell", choices=SHELLS)
    return parser


def settings_from(ns: argparse.Namespace) -> Settings:
    """Settings from BATON_* variables, with the flags given on the command line applied over them."""
    overrides = {f.name: getattr(ns, f.name) for f in fields(Settings) if getattr(ns, f.name, None) is not None}
    return Settings.from_env(**overrides)


def reader_gone() -> int:
    """What was printed is no longer read (``baton runs ls | head``): end quietly, as a tool that SIGPIPE
    ends does, with its exit code. Python ignores SIGPIPE, so the write raised instead; stdout goes to
    /dev/null first, or the interpreter's last flush would raise again on its way out."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand."""
    ns = build_parser().parse_args(argv)
    if ns.command not in ("worker", "api"):  # those log them, once logging is set up
        for warning in env_warnings():
            print(f"baton: warning: {warning}", file=sys.stderr)
    try:
        if ns.command == "completion":
            sys.stdout.write(completion_script(build_parser(), ns.shell))
            sys.stdout.flush()
            return 0
        if ns.command in ("runs", "dlq", "apikey"):
            return asyncio.run(run_command(ns))
        if ns.command in OPS_COMMANDS:
            return asyncio.run(run_ops_command(ns))
        if ns.command == "webhooks":
            return asyncio.run(run_webhook_command(ns))
        if ns.command == "tokens":
            return asyncio.run(run_token_command(ns))
        settings = settings_from(ns)
        if ns.command == "worker":
            signals = StopSignals()  # before the app's import, which may take a while
            return run_worker(load_app(ns.app), settings, signals)
        if ns.command == "api":
            signals = StopSignals()
            return run_api(load_app(ns.app) if ns.app else Baton(settings), settings, signals)
        through_api = use_api(ns, os.environ.get("BATON_API_URL"), settings)
        return asyncio.run(run_client_command(ns, settings, through_api))
    except BatonError as exc:
        if ns.command in ("worker", "api"):  # a daemon's log pipeline parses its stderr
            fmt = getattr(ns, "log_format", None) or os.environ.get(f"{ENV_PREFIX}LOG_FORMAT", "")
            startup_failure(str(exc), fmt, type(exc).__name__)
            return 2
        print(f"baton: {exc}", file=sys.stderr)
        # (a bad setting is a command line that cannot be sent; what the run or the server refused is an error)
        return 2 if isinstance(exc, ConfigError) else 1
    except RedisError as exc:  # submit/get talk to Redis directly; redis-py's messages carry no password
        print(f"baton: Redis: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return reader_gone()
    except Exception as exc:
        if ns.command in ("worker", "api"):
            raise  # a daemon's crash keeps its traceback: it is logged and investigated
        # a command run by hand says what went wrong in one line, never a traceback
        print(f"baton: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
