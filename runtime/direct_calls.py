"""Single commands sent on connections held out of the client's pool (see DirectCalls)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import hiredis
from redis.asyncio.cluster import PipelineCommand, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .closed_transport import raise_translated
from .connection import RECONNECT_RETRIES

__all__ = ["DirectCalls", "redis_ms"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class DirectCalls:
    """Single commands sent on connections held out of the client's pool.

    redis-py's per-command path (pool lock, connection check, retry wrapper,
    observability hooks, release) runs more Python than the command itself,
    and the submission and hand-off paths pay it in pickup latency. This
    keeps connections taken from the pool and uses them directly: one
    connection per concurrent call, reused. A connection error drops the
    connection and sends the command through the client, with its retries.
    A cluster client (which routes per key) is always used as is.
    Replies are raw: no redis-py response callbacks.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pool = None if isinstance(client, RedisCluster) else client.connection_pool
        self._free: list[Any] = []

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its raw reply (error replies raise as usual)."""
        if self._pool is None:
            return await self._client.execute_command(*args)
        return await self._held(lambda conn: _send_one(conn, args), lambda: self._client.execute_command(*args))

    async def _held(self, call: Callable[[Any], Awaitable[T]], through_client: Callable[[], Awaitable[T]]) -> T:
        """``call`` on a held connection; on a lost connection, ``through_client`` (the same
        commands through the client, with its retries)."""
        conn = self._free.pop() if self._free else await self._pool.get_connection()  # type: ignore[union-attr]
        try:
            result = await call(conn)
        except ResponseError:
            self._free.append(conn)  # the error reply was read whole: the connection is fine
            raise
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await conn.disconnect()
            self._free.append(conn)  # reconnects when next used
            return await through_client()
        except BaseException:
            # cancelled mid-call: a reply may still be on its way, so the
            # connection cannot be reused as it is
            await conn.disconnect(nowait=True)
            self._free.append(conn)
            raise
        self._free.append(conn)
        return result

    async def execute_durably(self, wait: tuple[Any, ...], *args: Any, key: Any = None) -> tuple[Any, Any]:
        """Send one command and then ``wait`` (a WAIT or WAITAOF command) on the same connection,
        in one round trip: the command's reply and the wait's (which covers every write this
        connection made). ``key``: the command's key, which routes it on a cluster (None: a
        script call's first key)."""
        if self._pool is None:
            return await self._pair_on_cluster(args[3] if key is None else key, args, wait)
        conn = self._free.pop() if self._free else await self._pool.get_connection()
        try:
            reply, acked = await _send_pair(conn, args, wait)
        except ResponseError as exc:
            self._free.append(conn)
            if not _refused_wait(exc):
                raise
            # WAIT(AOF) is refused by a replica only: this server was demoted (a read-only script
            # ran there without the READONLY that would have told us). Nothing was written,
            # so the command goes again, to the master named now.
            await self._drop_if_not_master(conn, demoted=True)
            return await self._pair_through_client(args, wait)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await conn.disconnect()
            self._free.append(conn)
            return await self._pair_through_client(args, wait)
        except BaseException:
            await conn.disconnect(nowait=True)
            self._free.append(conn)
            raise
        self._free.append(conn)
        if _short(wait, acked):
            # the replicas did not confirm the write: perhaps this master was failed over while
            # it could not answer (paused, partitioned) and is back, still a master, for the
            # seconds until Sentinel demotes it; the caller's next try must go to the new one
            await self._drop_if_not_master(conn)
        return reply, acked

    async def execute_timed(self, key: Any, *args: Any) -> tuple[int, Any]:
        """Send TIME and then one command on ``key`` to the same server, in one round trip: the
        Redis clock (ms) just before the command ran, and the command's reply.

        A blocking pop needs it to judge what it takes: an entry that waited in
        the list was written before the pop started, by that server's clock.
        """
        if self._pool is None:
            clock, reply = await self._pair_on_cluster(key, ("TIME",), args)
        else:
            clock, reply = await self._held(lambda conn: _send_pair(conn, ("TIME",), args),
                                            lambda: self._pair_through_client(("TIME",), args))
        return redis_ms(clock), reply

    async def execute_after(self, first: tuple[Any, ...], *args: Any) -> Any:
        """Send ``first`` and then one command in one write, on one connection: the command's reply
        (an error reply to ``first`` is raised, after both replies were read). For a write that may
        wait for the next call, as a stream's acknowledgement for the next blocking read."""
        if self._pool is None:
            return (await self._pair_through_client(first, args))[1]
        _, reply = await self._held(lambda conn: _send_pair(conn, first, args),
                                    lambda: self._pair_through_client(first, args))
        return reply

    async def _drop_if_not_master(self, conn: Any, demoted: bool = False) -> None:
        """Reconnect every connection of the pool when ``conn``'s server is not the master any
        more: ``demoted`` (it said so), or Sentinel names another one."""
        assert self._pool is not None
        master_address = getattr(self._pool, "get_master_address", None)
        if master_address is None:  # not a Sentinel client: one server, no other master to find
            return
        if not demoted:
            try:
                host, port = await master_address()
            except (RedisError, OSError):
                return  # the sentinels cannot say now; the next short WAIT asks again
            if (str(host), int(port)) == (str(conn.host), int(conn.port)):
                return
            logger.warning("the Redis master is now %s:%s (Sentinel), not %s:%s: reconnecting", host, port,
                           conn.host, conn.port)
        else:
            logger.warning("the Redis master %s:%s was demoted: reconnecting", conn.host, conn.port)
        # idle connections now, those in use when they are given back (a blocking read's within
        # its block time), ours at once; each reconnects to the master Sentinel names then
        await self._pool.disconnect(inuse_connections=False)
        for other in getattr(self._pool, "_in_use_connections", ()):
            other.mark_for_reconnect()
        for held in self._free:
            await held.disconnect()

    async def _pair_on_cluster(self, key: Any, first: tuple[Any, ...], second: tuple[Any, ...]) -> tuple[Any, Any]:
        """Two commands on one connection to the master of ``key``'s slot (a keyed command and the
        WAIT after it, or TIME and the keyed command it times). A cluster pipeline would not do: it
        sends a keyless command (WAIT, TIME) to its default node, on another connection, whose WAIT
        has no write to wait for and answers at once. A redirection, a lost node or a replica's
        refusal of WAIT (a failover under way) refreshes the slot table and tries again; the
        commands had no effect in those cases."""
        last: BaseException | None = None
        for attempt in range(RECONNECT_RETRIES + 2):
            if attempt:
                await asyncio.sleep(min(0.5, 0.05 * 2 ** attempt))
                try:
                    await self._client.nodes_manager.initialize()
                except (RedisError, RedisClusterException, OSError) as exc:
                    last = exc
                    continue
            try:
                await self._client.initialize()  # a fresh client knows no node yet
                node = self._client.get_node_from_key(key)
                commands = [PipelineCommand(0, *first), PipelineCommand(1, *second)]
                await node.execute_pipeline(commands)
            except (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError) as exc:
                last = exc
                continue
            replies = (commands[0].result, commands[1].result)
            redirected = next((r for r in replies if isinstance(r, _REDIRECTED)
                               or (isinstance(r, ResponseError) and _refused_wait(r))), None)
            if redirected is not None:
                last = redirected
                continue
            for reply in replies:
                if isinstance(reply, BaseException):
                    raise reply
            return replies
        raise RedisConnectionError(f"the master of the key's slot did not take the commands: {last!r}")

    async def _pair_through_client(self, first: tuple[Any, ...], second: tuple[Any, ...]) -> tuple[Any, Any]:
        """The two commands in one pipeline of the client (one connection, with its retries)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.execute_command(*first)
        pipe.execute_command(*second)
        a, b = await pipe.execute()
        return a, b

    @property
    def raw(self) -> bool:
        """Whether replies come back raw (RESP as parsed by hiredis); a cluster client's are
        redis-py's parsed replies, as its own commands return them."""
        return self._pool is not None

    async def release(self) -> None:
        """Give the held connections back to the client's pool (calls in flight keep theirs)."""
        if self._pool is None:
            return
        while self._free:
            await self._pool.release(self._free.pop())


#: replies of a cluster node that does not serve the slot (now or yet): the command did not run
_REDIRECTED = (MovedError, AskError, ClusterDownError, TryAgainError, RedisConnectionError, RedisTimeoutError)


def _pack(conn: Any, args: tuple[Any, ...]) -> bytes:
    """One command in RESP: hiredis's C packer (the same bytes as redis-py's, ~8x faster, which
    matters for a script call with a run's spec on the pickup path); redis-py's for anything
    hiredis does not take (its errors are the ones callers know)."""
    try:
        packed: bytes = hiredis.pack_command(args)
    except TypeError:
        return b"".join(conn.pack_command(*args))
    return packed


async def _send_one(conn: Any, args: tuple[Any, ...]) -> Any:
    """One command on a held connection; its reply."""
    await _connected(conn)
    await _send(conn, args)
    return await conn.read_response()


async def _send_pair(conn: Any, first: tuple[Any, ...], second: tuple[Any, ...]) -> tuple[Any, Any]:
    """Two commands on a held connection in one write; both replies read (the second even after the
    first was an error reply, to keep the stream in step), the first error reply raised."""
    await _connected(conn)
    await conn.send_packed_command(conn.pack_commands([first, second]))
    try:
        a = await conn.read_response()
    finally:
        b = await conn.read_response()
    return a, b


def redis_ms(clock: Any) -> int:
    """A TIME reply (seconds, microseconds; raw bytes or parsed ints) in milliseconds."""
    return int(clock[0]) * 1000 + int(clock[1]) // 1000


async def _send(conn: Any, args: tuple[Any, ...]) -> None:
    """Write one command on a connected connection.

    redis-py's send wraps every write in ``asyncio.wait_for`` when the connection
    has a socket timeout, which costs a task and an event-loop turn per command
    (~10-30 µs here, on the pickup path); a write to a socket whose buffer has
    room completes at once, so only a real wait for room runs under the timeout.
    A timeout here is a TimeoutError, an OSError, which callers treat as a
    dropped connection. Connections without the stream writer this relies on
    (another transport) go through redis-py's own send.
    """
    writer = getattr(conn, "_writer", None)
    if writer is None:
        await conn.send_command(*args)
        return
    try:
        writer.write(_pack(conn, args))
    except RuntimeError as exc:  # uvloop's write on a closed transport (runtime/closed_transport.py)
        raise_translated(exc)
    if writer.transport.get_write_buffer_size():
        async with asyncio.timeout(conn.socket_timeout):
            await writer.drain()


async def _connected(conn: Any) -> None:
    """Reconnect a held connection that was dropped, marked for reconnection (another
    DirectCalls of this client learnt of a new master) or is stale (runtime/stale_connections.py:
    a reply from its server timed out since it was opened), through its own connect(): a Sentinel
    connection asks the sentinels for the master there, while the implicit connect of a send
    goes back to the address it had (an old master, after a failover)."""
    if conn.should_reconnect():  # (stale ones included)
        await conn.disconnect()  # (clears the mark)
    if not conn.is_connected:
        await conn.connect()


def _refused_wait(exc: ResponseError) -> bool:
    """Whether an error reply is a replica's refusal of WAIT or WAITAOF."""
    return str(exc).startswith(("WAIT cannot be used with replica", "WAITAOF cannot be used with replica"))


def _short(wait: tuple[Any, ...], reply: Any) -> bool:
    """Whether a WAIT (replicas) or WAITAOF (local fsync, replicas) reply confirms less than it asked."""
    if wait[0] == "WAITAOF":
        local, replicas = (int(v) for v in reply)
        return local < int(wait[1]) or replicas < int(wait[2])
    return int(reply) < int(wait[1])
