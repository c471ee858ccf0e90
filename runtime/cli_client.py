"""The CLI's commands for trying things by hand: ``baton submit``, ``baton get`` and ``baton redis-cli``.

They find where to go by themselves, in this order: an API URL given
(``--api-url`` / ``BATON_API_URL``); a Redis URL given (``--redis-url``,
``BATON_REDIS_URL``, ``REDIS_URL``); the embedded server of this checkout's
development node (``./dev up``, see runtime/devnode.py); else the API at its
default URL. Whichever way, a run is printed in one shape: the API's native
run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson
from redis.asyncio import RedisCluster

from .api.client import ApiClientError
from .api.commands import api_client
from .api.views import native_run
from .app import Baton
from .connection import connect
from .devnode import embedded_url
from .rejections import find_rejection
from .settings import Settings
from .statuses import TERMINAL

__all__ = ["redis_settings", "run_client_command", "use_api"]


def redis_settings(settings: Settings) -> Settings | None:
    """The settings with a Redis URL to use: the configured one, else the dev node's embedded server."""
    if settings.redis_url:
        return settings
    url = embedded_url(settings)
    return settings.with_changes(redis_url=url) if url else None


def use_api(ns: argparse.Namespace, api_url_env: str | None, settings: Settings) -> bool:
    """Whether submit/get go through the API: an API URL was given, or no Redis can be found."""
    return bool(getattr(ns, "api_url", None) or api_url_env) or redis_settings(settings) is None


async def run_client_command(ns: argparse.Namespace, settings: Settings, through_api: bool) -> int:
    """submit / get / redis-cli; returns the exit code (errors are one line on stderr)."""
    if ns.command == "redis-cli":
        return await _redis_cli(ns, settings)
    if through_api:
        return await _through_api(ns)
    found = redis_settings(settings)
    assert found is not None  # use_api said so
    return await _through_redis(ns, found)


async def _through_api(ns: argparse.Namespace) -> int:
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
            run = await api.get(f"/v1/runs/{ns.run_id}")
            _note_alias(ns.run_id, run["id"])
            _print(run)
            return 0
    except ApiClientError as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return 1


async def _through_redis(ns: argparse.Namespace, settings: Settings) -> int:
    async with Baton(settings) as app:
        if ns.command == "submit":
            run_id = await app.trigger(ns.job, orjson.loads(ns.input))
            if ns.wait:
                try:
                    run = await app.wait_for(run_id, ns.wait)
                except TimeoutError as exc:
                    print(f"baton: {exc}", file=sys.stderr)
                    return 1
                _print(native_run(run))
            else:
                print(run_id)
            return 0
        found = await app.get_run(ns.run_id)
        if found is None:
            rejected = await find_rejection(app, ns.run_id)
            if rejected is not None:
                print(f"baton: stream entry {ns.run_id} made no run: it was rejected ({rejected['reason']}: "
                      f"{rejected['error']})", file=sys.stderr)
            else:
                print(f"baton: run {ns.run_id} not found", file=sys.stderr)
            return 1
        _note_alias(ns.run_id, found.id)
        _print(native_run(found))
        return 0


def _note_alias(asked: str, found: str) -> None:
    """Say so when an id led to another run: a repeated submission that created nothing (its idempotency
    key, id or debounce key was taken) resolves to the run that holds it."""
    if found not in (asked, asked.removeprefix("run_")) and not found.endswith(f":{asked}"):
        print(f"baton: {asked} created no run of its own (a duplicate submission): it resolved to run {found}",
              file=sys.stderr)


async def _redis_cli(ns: argparse.Namespace, settings: Settings) -> int:
    """One Redis command against the node's Redis, its reply printed as redis-cli prints it to a pipe."""
    found = redis_settings(settings)
    if found is None:
        print("baton: no Redis to talk to: no BATON_REDIS_URL / REDIS_URL and no development node running "
              "here (start one with ./dev up)", file=sys.stderr)
        return 1
    client = connect(found.redis_url, cluster=found.redis_cluster)
    try:
        if isinstance(client, RedisCluster):
            await client.initialize()  # (it maps the cluster with the callbacks cleared below)
        # the reply as the server sent it: redis-py's callbacks would make PING's PONG True, and
        # HGETALL's list a dict
        client.response_callbacks.clear()
        reply = await client.execute_command(*ns.args)
    finally:
        await client.aclose()
    sys.stdout.write(_reply(reply))
    return 0


def _reply(value: Any) -> str:
    """A reply as redis-cli prints it to a pipe: each element on its own line, nil as an empty one."""
    if value is None:
        return "\n"
    if isinstance(value, bytes):
        return value.decode(errors="replace") + "\n"
    if isinstance(value, list | tuple | set):
        return "".join(_reply(v) for v in value)
    if isinstance(value, dict):  # (a RESP3 map: its keys and values in turn)
        return "".join(_reply(k) + _reply(v) for k, v in value.items())
    if isinstance(value, bool):  # (a RESP3 boolean, as RESP2 sends it)
        return f"{int(value)}\n"
    return f"{value}\n"


def _print(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")
