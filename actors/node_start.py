"""What a node does once at start, before its actors run, that may meet a Cluster master that is down:
readying the partitions for its claims, removing the Lua libraries of other versions and loading
this version's where they are missing."""

from __future__ import annotations

import logging

from redis.exceptions import RedisClusterException, RedisError

from runtime.app import Baton
from runtime.partition_outages import sharing_master
from runtime.redis_faults import described, is_outage

from .fetcher import ready_partition

__all__ = ["ready_partitions", "update_libraries"]


async def ready_partitions(app: Baton, readied: set[int], log: logging.Logger, incarnation: str) -> None:
    """Ready each partition that answers for this node's claims (fetcher.ready_partition), before
    any actor starts, adding it to ``readied`` (the fetcher's: it readies the others once they
    answer). Raises the outage when no partition answers (one server down: the node waits at
    start, as for every outage)."""
    lost: BaseException | None = None
    unanswered: set[int] = set()
    for p in app.keys.partitions:
        if p.index in unanswered or p.index in readied:
            continue
        try:
            await ready_partition(app, p, incarnation)
        except (RedisError, RedisClusterException) as exc:
            if not is_outage(exc):
                raise
            lost = lost or exc
            # the others on its master are not tried one by one (each waits out the client's retries)
            unanswered.update(q.index for q in sharing_master(app, p))
            continue
        # (added before the fetcher starts: it readies the rest itself, before its first claim there)
        readied.add(p.index)
    if lost is None:
        return
    if not readied:
        raise lost
    log.warning("partitions %s did not answer at start (%s): this node serves the others now, and "
                "each of those once its master answers", ",".join(map(str, sorted(unanswered))),
                described(lost)[:300])


async def update_libraries(app: Baton, log: logging.Logger) -> None:
    """Housekeeping at start: the Lua libraries of other versions removed, then this version's loaded
    where they are missing. Left to the next start (and to each call, which loads what it misses) when
    a Cluster master does not answer now."""
    try:
        await app.scripts.lua.remove_other_versions()
        await app.scripts.lua.load_missing()
    except (RedisError, RedisClusterException) as exc:
        if not is_outage(exc):
            raise
        log.info("the Lua libraries were not all updated (%s): the next start does it, and each call "
                 "loads its own library when it is missing", described(exc)[:300])
