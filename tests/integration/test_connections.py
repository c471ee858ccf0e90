"""Connecting as users would: ACL user and password, TLS (rediss://); retention and eviction warnings."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtime import Baton, RunContext, Settings
from runtime.connection import check_eviction_policy, connect, socket_timeout_s
from runtime.statuses import RETENTION_MARGIN_MS
from tests.nodes import running_node
from tests.servers import RedisProcess, free_port


def _tls_server_binary() -> str | None:
    """A redis-server built with TLS (Debian's is); the bundled valkey is not."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return binary if "v=" in out else None


def _require_tls_binary() -> str:
    binary = _tls_server_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have a TLS-capable redis-server on PATH (./dev test installs it when root)")
        pytest.skip("no TLS-capable redis-server on PATH (apt-get install redis-server)")
    return binary


async def _run_one(settings: Settings) -> None:
    app = Baton(settings)

    @app.job()
    async def ping(ctx: RunContext, payload: Any) -> str:
        return "pong"

    try:
        async with running_node(app):
            run = await app.wait_for(await app.trigger("ping"), 10)
        assert run.status == "completed" and run.output == "pong"
    finally:
        await app.close()


async def test_acl_user_and_password(settings: Settings) -> None:
    # Given a server where the default user is off and only "baton" with a password may connect
    server = RedisProcess(args=["--user", "default", "off", "--user", "baton", "on", ">s3cret", "~*", "&*", "+@all"],
                          auth=("baton", "s3cret"))
    try:
        server.start()
        url = f"redis://baton:s3cret@127.0.0.1:{server.port}"
        # the default user really is refused
        anon = aioredis.from_url(f"redis://127.0.0.1:{server.port}")
        with pytest.raises(Exception, match=r"(?i)auth|noperm|NOAUTH|disabled"):
            await anon.ping()
        await anon.aclose()
        # When a node connects with the ACL user, then runs flow
        await _run_one(settings.with_changes(redis_url=url))
    finally:
        server.stop()


async def test_tls_rediss_url(settings: Settings, tmp_path: Path) -> None:
    binary = _require_tls_binary()
    import trustme

    # Given a TLS-only server with a certificate from a test CA
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = RedisProcess(binary=binary, tls_port=free_port(), args=["--tls-cert-file", str(tmp_path / "server.crt"),
                                "--tls-key-file", str(tmp_path / "server.key"),
                                "--tls-ca-cert-file", str(tmp_path / "ca.pem"), "--tls-auth-clients", "no"])
    try:
        server.start()
        url = f"rediss://127.0.0.1:{server.tls_port}?ssl_ca_certs={tmp_path / 'ca.pem'}"
        # When a node connects over rediss://, then runs flow
        await _run_one(settings.with_changes(redis_url=url))
    finally:
        server.stop()


async def test_finished_runs_expire_and_indices_are_capped(make_app: Any, redis: Any) -> None:
    # Given a 60 s finished TTL and a cap of 5 runs per status index
    app = make_app(finished_ttl_s=60, finished_cap=5, concurrency=1)  # one slot: runs finish in order

    @app.job()
    async def noop(ctx: RunContext, payload: Any) -> None:
        # a few ms each, so no two runs finish in the same millisecond (the
        # index orders ties by id, not by creation)
        await asyncio.sleep(0.003)

    async with running_node(app):
        ids = [await app.trigger("noop") for _ in range(8)]
        # the oldest runs leave the capped index (and Redis) as newer ones finish
        await app.wait_for(ids[-1], 10)
        for run_id in ids[-5:]:
            await app.wait_for(run_id, 10)
    p = app.keys.partitions[0]
    # Then each kept run has a TTL no longer than 60 s (and the margin its keys outlive it by), and
    # only the newest 5 are kept
    assert await redis.zcard(p.status("completed")) == 5
    kept = [rid for rid in ids if await redis.exists(p.run(rid))]
    assert kept == ids[-5:]
    for rid in kept:
        assert 0 < await redis.pttl(p.run(rid)) <= 60_000 + RETENTION_MARGIN_MS


async def test_eviction_policy_warning(redis: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Given our own test server set to an evicting policy
    await redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with caplog.at_level(logging.WARNING, logger="runtime.connection"):
            policy = await check_eviction_policy(redis)
        # Then Baton warns
        assert policy == "allkeys-lru"
        assert any("noeviction" in r.getMessage() for r in caplog.records)
    finally:
        await redis.config_set("maxmemory-policy", "noeviction")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="runtime.connection"):
        assert await check_eviction_policy(redis) == "noeviction"
    assert not caplog.records


async def test_a_silent_connection_fails_the_command_instead_of_stalling_it() -> None:
    # Given a "server" that accepts connections and never answers (a half-open or black-holed path)
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()  # read whatever comes, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # Then Baton's clients wait for replies at most the default reply timeout, with keepalive on
    default = connect(f"redis://127.0.0.1:{port}")
    kwargs = default.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == socket_timeout_s() == 10.0 and kwargs["socket_keepalive"] is True
    await default.aclose()
    # And a command on such a connection fails (here with the timeout shortened) instead of hanging
    client = connect(f"redis://127.0.0.1:{port}", socket_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises((RedisTimeoutError, RedisConnectionError)):
            await asyncio.wait_for(client.ping(), 30)
        assert loop.time() - started < 10 and accepted
    finally:
        await client.aclose()
        server.close()
        for writer in accepted:
            writer.close()
