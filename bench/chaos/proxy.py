"""A TCP proxy between worker nodes and Redis that injects network faults (asyncio, loopback only).

Faults, each on every connection through the proxy:

- ``drop()``: close every open connection at once (both sides); new ones are accepted.
- ``latency(s)``: delay every chunk of data, both ways, by ``s`` seconds.
- ``blackhole()``: stop moving bytes and accept no new connection's traffic, without
  closing anything: what a dead route looks like. Data waits in the kernel
  buffers (as TCP would retransmit it) and flows again on ``heal()``.
- ``lose_replies(marker, n)``: the next ``n`` requests that contain ``marker`` reach Redis and
  run, and the connection each came on is closed before its reply is passed on: the reply is lost
  (what a link dropped at the wrong moment does), and the client may send the request again.
  With ``in_reply``, the next ``n`` replies that contain ``marker`` are lost that way (a blocking
  pop's, whose request went up long before the data it returns was written).
- ``half_open()``: the Redis side of every open connection is closed while the node's
  side stays open and silent: the node's requests are read and go nowhere, no reply
  and no FIN ever reach it (a peer that vanished). New connections work. ``heal()``
  leaves those orphaned node sides as they are (nothing would ever tell the node):
  only ``stop()`` closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

__all__ = ["FaultProxy"]

CHUNK = 65536


@dataclass(eq=False)
class _Pipe:
    """One proxied connection: the node's side and the Redis side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    #: half-open: the Redis side is gone, the node side is kept silent
    orphaned: bool = False
    #: a request of lose_replies went up this connection: it is closed when the reply comes
    losing_reply: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for w in (self.client, self.upstream):
            with contextlib.suppress(Exception):
                w.close()


class FaultProxy:
    """Listens on 127.0.0.1:<port> and forwards to 127.0.0.1:<target_port>."""

    def __init__(self, target_port: int, port: int) -> None:
        self.target_port = target_port
        self.port = port
        self.delay_s = 0.0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._pipes: set[_Pipe] = set()
        self._server: asyncio.Server | None = None
        self.connections = 0
        self._lose_marker = b""
        self._lose_left = 0
        self._lose_in_reply = False
        #: replies lost so far (lose_replies)
        self.replies_lost = 0

    @property
    def url(self) -> str:
        """redis:// URL of the proxy (what the nodes are given)."""
        return f"redis://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        """Start listening."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        """Close every connection and the listener."""
        self._flowing.set()
        for pipe in list(self._pipes):
            pipe.close()
        self._pipes.clear()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    # -- faults --------------------------------------------------------------

    def drop(self) -> int:
        """Close every open connection; returns how many."""
        pipes = list(self._pipes)
        for pipe in pipes:
            pipe.close()
        self._pipes.clear()
        return len(pipes)

    def latency(self, seconds: float) -> None:
        """Delay every chunk by ``seconds`` (0 = none)."""
        self.delay_s = seconds

    def blackhole(self) -> None:
        """Stop moving bytes, closing nothing."""
        self._flowing.clear()

    def half_open(self) -> int:
        """Close the Redis side of every open connection and keep the node side silent; returns how many."""
        n = 0
        for pipe in list(self._pipes):
            if pipe.orphaned:
                continue
            pipe.orphaned = True
            with contextlib.suppress(Exception):
                pipe.upstream.close()
            n += 1
        return n

    def upstreams(self) -> set[str]:
        """``host:port`` of the Redis side of every connection not half-open yet, as Redis's CLIENT LIST
        names them (``addr``): a caller can wait until Redis has seen them closed."""
        addresses = set()
        for pipe in self._pipes:
            sockname = pipe.upstream.get_extra_info("sockname")
            if not pipe.orphaned and sockname:
                addresses.add(f"{sockname[0]}:{sockname[1]}")
        return addresses

    def lose_replies(self, marker: bytes, n: int, in_reply: bool = False) -> None:
        """Lose the replies of the next ``n`` requests that contain ``marker``, or with ``in_reply`` the
        next ``n`` replies that contain it (see the module doc)."""
        self._lose_marker, self._lose_left, self._lose_in_reply = marker, n, in_reply

    def heal(self) -> None:
        """End the delay and the black hole (half-open connections stay dead and silent)."""
        self.delay_s = 0.0
        self._flowing.set()

    # -- forwarding ----------------------------------------------------------

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            async with asyncio.timeout(5):
                u_reader, u_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except (OSError, TimeoutError):
            c_writer.close()  # Redis is down: the node sees a refused/closed connection
            return
        pipe = _Pipe(c_writer, u_writer)
        self._pipes.add(pipe)
        pipe.tasks = [
            asyncio.create_task(self._forward(c_reader, u_writer, pipe, to_upstream=True)),
            asyncio.create_task(self._forward(u_reader, c_writer, pipe, to_upstream=False)),
        ]

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pipe: _Pipe, to_upstream: bool,
    ) -> None:
        try:
            while True:
                await self._flowing.wait()  # a black hole: nothing is read, nothing closed
                data = await reader.read(CHUNK)
                if not data:
                    break
                if pipe.orphaned:
                    if to_upstream:
                        continue  # the node's request goes nowhere
                    break
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                await self._flowing.wait()
                marked = self._lose_left and self._lose_marker in data
                if marked and to_upstream and not self._lose_in_reply:
                    self._lose_left -= 1
                    pipe.losing_reply = True
                elif marked and not to_upstream and self._lose_in_reply:
                    self._lose_left -= 1
                    self.replies_lost += 1
                    break
                elif not to_upstream and pipe.losing_reply:
                    self.replies_lost += 1
                    break  # the request ran; its reply goes nowhere, and the connection closes
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # one side ended: end the other, unless the connection is being kept half open
            if not pipe.orphaned:
                pipe.close()
                self._pipes.discard(pipe)
