"""The CLI's message commands (HTTP API): ``baton runs signal|query`` and ``baton tokens ...``.

``baton runs signal RUN NAME --data JSON`` sends a signal, ``baton runs query RUN``
prints the state the run published; ``baton tokens ls|get|complete|expire`` is
for people in the loop: list the tokens runs wait for, then answer one.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import orjson

from .client import ApiClient, ApiClientError
from .commands import _table, _when, add_api_args, api_client, emit
from .commands_ops import _json_arg

__all__ = ["RUN_MESSAGE_COMMANDS", "add_run_message_commands", "add_token_commands", "run_message_command",
           "run_token_command"]

#: the ``baton runs`` subcommands this module adds
RUN_MESSAGE_COMMANDS = ("signal", "query")


def add_run_message_commands(rsub: Any) -> None:
    """Add ``signal`` and ``query`` to ``baton runs``."""
    signal = rsub.add_parser("signal", help="send a signal to a run's ctx.wait_for_signal(name)")
    signal.add_argument("run_id")
    signal.add_argument("name")
    signal.add_argument("--data", type=_json_arg, default=None, help="JSON data of the signal")
    add_api_args(signal)
    query = rsub.add_parser("query", help="print the state a run published with ctx.set_state")
    query.add_argument("run_id")
    add_api_args(query)


def add_token_commands(sub: Any) -> None:
    """Add ``tokens`` to the ``baton`` command."""
    tokens = sub.add_parser("tokens", help="waitpoint tokens runs wait for: list, show, complete, expire")
    tsub = tokens.add_subparsers(dest="tokens_command", required=True)
    ls = tsub.add_parser("ls", help="list tokens, newest first")
    ls.add_argument("--status", choices=["waiting", "completed", "expired"])
    ls.add_argument("--tag", action="append", default=[], help="a tag the token carries (repeatable: all of them)")
    ls.add_argument("--run-id", help="tokens of one run")
    ls.add_argument("--limit", type=int, default=50, help="most tokens (at most 500)")
    add_api_args(ls)
    for verb, text in (("get", "show one token"), ("complete", "complete a token: its run resumes with --data"),
                       ("expire", "expire a token: its run's wait raises WaitTimeout")):
        parser = tsub.add_parser(verb, help=text)
        parser.add_argument("token_id")
        if verb == "complete":
            parser.add_argument("--data", type=_json_arg, default=None, help="JSON the run's wait returns")
        add_api_args(parser)


async def run_message_command(api: ApiClient, ns: argparse.Namespace, out: TextIO) -> int:
    """``baton runs signal|query``."""
    if ns.runs_command == "signal":
        sent = await api.post(f"/v1/runs/{ns.run_id}/signals", {"name": ns.name, "data": ns.data})
        emit(ns, out, sent, "delivered: the run resumes\n" if sent["delivered"] else
             "kept for the run's next wait for it\n")
        return 0
    answer = await api.get(f"/v1/runs/{ns.run_id}/query")
    if answer["updated_at"] is None:
        people = f"run {ns.run_id} has published no state (a handler publishes it with ctx.set_state)\n"
    else:
        state = orjson.dumps(answer["state"], option=orjson.OPT_INDENT_2).decode()
        people = f"state of run {ns.run_id}, as of {_when(answer['updated_at'])}:\n{state}\n"
    emit(ns, out, answer, people)
    return 0


async def run_token_command(ns: argparse.Namespace, out: TextIO | None = None) -> int:
    """``baton tokens ...``; returns the exit code."""
    out = out or sys.stdout
    try:
        async with api_client(ns) as api:
            cmd = ns.tokens_command
            if cmd == "ls":
                page = await api.get("/v1/tokens", status=ns.status, tags=",".join(ns.tag) or None,
                                     run_id=ns.run_id, limit=ns.limit)
                if ns.json:
                    emit(ns, out, page, "")
                else:
                    _table([[t["id"], t["status"], t["run_id"], ",".join(t["tags"]), _when(t["expires_at"])]
                            for t in page["data"]], ["ID", "STATUS", "RUN", "TAGS", "EXPIRES"], out)
                return 0
            if cmd == "get":
                token = await api.get(f"/v1/tokens/{ns.token_id}")
                emit(ns, out, token, "".join(f"{k + ':':<12}{v}\n" for k, v in token.items() if v is not None))
                return 0
            body = ns.data if cmd == "complete" else None
            settled = await api.post(f"/v1/tokens/{ns.token_id}/{cmd}", body)
            emit(ns, out, settled, f"{settled['status']}; run {settled['run_id']} "
                 f"{'resumes' if settled['resumed'] else 'gets it when it waits'}\n")
            return 0
    except ApiClientError as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 1
