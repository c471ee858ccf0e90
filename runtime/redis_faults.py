"""Which Redis failures are a state of the server, to wait out, and which are a command Baton should not have sent.

Every part of a node asks here: the supervisor (an actor that failed on an outage is
restarted without spending its restart budget, and never makes the node exit), the intake
(an outage ends the batch, read again later, where any other error rejects the entry it
happened on) and the HTTP API (an outage answers 503, retry later; anything else is a 500).

An outage is either the link (the server down, restarting, unreachable, a cluster failing
over) or a server that answers but cannot serve the command now: out of memory under
``maxmemory``, a replica or a demoted master (READONLY), a master without enough replicas
(``min-replicas-to-write``), a failed snapshot that stops writes (MISCONF), a script running
past its time (BUSY), a dataset loading. A user or password the server refuses is not
one, though the client raises it as a lost link: waiting does not heal it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from redis import exceptions as redis_exceptions
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .closed_transport import closed_transport
from .errors import ConfigError, OutageOutlastedLease, RedisUnavailable

__all__ = ["LINK_DOWN", "OUTAGE_PAUSE_MAX_S", "REFUSED_CREDENTIALS", "SERVER_STATE_CODES", "credentials_refused",
           "described", "despite_outages", "group_missing", "is_outage", "make_group", "ride_out", "server_state"]

T = TypeVar("T")
X = TypeVar("X")

#: the longest pause before trying Redis again during an outage, wherever it is waited out (an
#: actor's restart, a handler's write): back at work within it of Redis (a try is cheap for both sides)
OUTAGE_PAUSE_MAX_S = 1.0
#: the first pause between tries of a handler's write waiting out an outage (it doubles from there)
RIDE_OUT_FIRST_PAUSE_S = 0.05

#: errors of a Redis that is down, restarting or unreachable, or whose replicas are
#: (NotReplicated is a RedisUnavailable), and Redis Cluster's while a failover is under way
#: (a master lost, its slots not yet served by its replica)
LINK_DOWN = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, RedisUnavailable, ClusterDownError,
             SlotNotCoveredError)

#: the server refused Baton's user or password: the client raises them as a lost link, but waiting
#: does not heal them (and a pod reads its Secret only when it starts), so they are not an outage
REFUSED_CREDENTIALS = (AuthenticationError, AuthorizationError)

#: what redis-py 8.2 raises when no node of a cluster can be reached (8.1 has no such class)
_CLUSTER_UNREACHABLE: type[Exception] | None = getattr(redis_exceptions, "RedisClusterUnreachableError", None)

#: codes of the error replies of a server that is there but cannot serve the command now
SERVER_STATE_CODES = frozenset({"OOM", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS", "BUSY",
                                "LOADING", "MISCONF", "UNKILLABLE"})
#: the classes the Redis client raises for some of those codes (it strips the code from the message)
_SERVER_STATE_CLASSES = (OutOfMemoryError, ReadOnlyError, MasterDownError, ClusterDownError, TryAgainError,
                         BusyLoadingError)


def server_state(exc: BaseException) -> bool:
    """Whether ``exc`` is an error reply of a server that cannot serve the command now (see the module)."""
    if isinstance(exc, _SERVER_STATE_CLASSES):
        return True
    return isinstance(exc, ResponseError) and str(exc).split(" ", 1)[0] in SERVER_STATE_CODES


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` is a Redis outage (the link or the server's state): waited out, never a reason to exit."""
    if isinstance(exc, REFUSED_CREDENTIALS):
        return False
    if isinstance(exc, LINK_DOWN) or closed_transport(exc) or server_state(exc):
        return True
    # no node of the cluster answers (the client's refresh of its slot table): redis-py 8.2 raises a
    # class of its own, 8.1 the bare RedisClusterException with this text
    if _CLUSTER_UNREACHABLE is not None and isinstance(exc, _CLUSTER_UNREACHABLE):
        return True
    return type(exc) is RedisClusterException and "cannot be connected" in str(exc)


def command_refused(exc: BaseException, *commands: str) -> bool:
    """Whether ``exc`` says the server does not have one of ``commands`` (lower case; a prefix such as
    ``function`` covers its subcommands) or the user's ACL does not allow it: not that it failed.
    What a node asks before it falls back to what older servers and ACL files have."""
    if not isinstance(exc, ResponseError):
        return False
    message = str(exc).lower()
    # Redis 7 quotes a command name as 'name', Redis 6 as `name`
    named = any(f"'{c}" in message or f"`{c}" in message for c in commands)
    if isinstance(exc, redis_exceptions.NoPermissionError) or message.startswith("noperm"):  # (redis-py strips it)
        return named
    return named and "unknown command" in message


def group_missing(exc: BaseException) -> bool:
    """Whether ``exc`` says a stream's consumer group is not there (NOGROUP): Redis lost its data (a
    restart without persistence, a replica promoted without it) since the reader made the group.
    The reader makes the group again and reads on; restarting it as a crashed actor would be noise."""
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")


async def make_group(redis: Any, stream: str, group: str) -> None:
    """Create consumer group ``group`` on ``stream`` (and the stream), reading from its start, unless it
    exists: what a reader does at start, and again when its group is gone (``group_missing``)."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def credentials_refused(exc: BaseException) -> ConfigError:
    """What stops a worker or ``baton api`` at start when Redis refused its user or password
    (REFUSED_CREDENTIALS): one line naming the setting, never the password."""
    from .settings import setting_names  # (settings reaches this module through connection)
    return ConfigError(f"Redis refused the user or password in {setting_names('redis_url')} ({described(exc)})")


def described(exc: BaseException) -> str:
    """``Type: message`` for a log line (the Redis client's exceptions print as ``server:OutOfMemoryError``
    through repr, without their message)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


async def despite_outages(items: Iterable[X], call: Callable[[X], Awaitable[T]]) -> list[T]:
    """``call(item)`` for every item (a partition, say), in order, each reply in the list.

    An outage on one item (on Redis Cluster: one master down) does not keep the call from the
    items after it: the first such error is raised once every other item has had its call. Any
    other error is raised at once. Callers make each call safe to send again, so a retry completes
    what the outage left out."""
    replies: list[T] = []
    lost: BaseException | None = None
    for item in items:
        try:
            replies.append(await call(item))
        except Exception as exc:
            if not is_outage(exc):
                raise
            lost = lost or exc
    if lost is not None:
        raise lost
    return replies


async def ride_out(call: Callable[[], Awaitable[T]], time_left: Callable[[], float], what: str) -> T:
    """``call()`` (made again for each try), tried again through a Redis outage for as long as
    ``time_left()`` (seconds) stays positive; each try is cut off when the time is up too.

    A handler's writes go through here with its lease's time left: a restart, a failover or a
    spell out of memory shorter than the lease costs the handler a wait, not its attempt.
    Raises OutageOutlastedLease (the outage as its cause) once the time is up; any error that
    is not an outage is raised as it is, at once.
    """
    pause = RIDE_OUT_FIRST_PAUSE_S
    failure = "no answer"  # what the last try met

    def outlasted() -> OutageOutlastedLease:
        return OutageOutlastedLease(f"{what}: Redis unavailable until the lease may have expired ({failure})")

    while True:
        left = time_left()
        window: asyncio.Timeout | None = None
        try:
            if left <= 0:
                return await call()
            # the client's own retries and socket timeout (a stalled server) could hold a try for
            # far longer than the lease has left
            async with asyncio.timeout(left) as window:
                return await call()
        except TimeoutError as exc:
            if window is None or not window.expired():
                raise
            raise outlasted() from exc
        except Exception as exc:
            if not is_outage(exc):
                raise
            failure = described(exc)
            if time_left() <= 0:
                raise outlasted() from exc
        await asyncio.sleep(min(pause, max(time_left(), 0.0)))
        pause = min(pause * 2, OUTAGE_PAUSE_MAX_S)
