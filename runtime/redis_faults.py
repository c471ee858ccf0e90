"""Which Redis failures are a state of the server, to wait out, and which are a command Baton should not have sent.

Every part of a node asks here: the supervisor (an actor that failed on an outage is
restarted without spending its restart budget, and never makes the node exit), the intake
(an outage ends the batch, read again later, where any other error rejects the entry it
happened on) and the HTTP API (an outage answers 503, retry later; anything else is a 500).

An outage is either the link (the server down, restarting, unreachable, a cluster failing
over) or a server that answers but cannot serve the command now: out of memory under
``maxmemory``, a replica or a demoted master (READONLY), a master without enough replicas
(``min-replicas-to-write``), a failed snapshot that stops writes (MISCONF), a script running
past its time (BUSY), a dataset loading.
"""

from __future__ import annotations

from redis.exceptions import (
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
from .errors import RedisUnavailable

__all__ = ["LINK_DOWN", "SERVER_STATE_CODES", "described", "is_outage", "server_state"]

#: errors of a Redis that is down, restarting or unreachable, or whose replicas are
#: (NotReplicated is a RedisUnavailable), and Redis Cluster's while a failover is under way
#: (a master lost, its slots not yet served by its replica)
LINK_DOWN = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, RedisUnavailable, ClusterDownError,
             SlotNotCoveredError)

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
    if isinstance(exc, LINK_DOWN) or closed_transport(exc) or server_state(exc):
        return True
    # redis-py raises the bare class when no node of the cluster answers (its refresh of the slot table)
    return type(exc) is RedisClusterException and "cannot be connected" in str(exc)


def described(exc: BaseException) -> str:
    """``Type: message`` for a log line (the Redis client's exceptions print as ``server:OutOfMemoryError``
    through repr, without their message)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
