"""Giving back, while a handler blocks the event loop, the runs it holds up, before their leases expire.

A handler that blocks the loop (a ``time.sleep`` or a CPU loop in an ``async def``) stops every actor
of its node: nothing renews the leases of the node's other runs. Past their expiry, other nodes reap
them as crashed, charging each an attempt it never failed (and dead-lettering those on their last
one), though the only run at fault is the one blocking. So the watchdog's thread, which keeps
running while the loop is blocked, gives those other runs back uncharged just before their leases
may expire: from that thread, on a Redis client of its own (in an event loop of its own), with the
same runs_finish outcome a drain gives back (``released``). The run blocking the loop is left to its
lease, and noted (``blocked_by``): if it blocks past it, its attempt fails when the loop runs again
(Executor.on_stall), or another node reaps it as crashed first, so a handler that always blocks ends
in the dead-letter queue instead of being given back for ever. Nothing is given back when the watchdog
could not tell which run blocks the loop (Baton's own code, a C extension holding the thread): the
reapers then judge every lease, as before.

When the loop runs again, the executor cancels the runs given back before their handlers go on
(``Executor.on_stall``): another node may be running them already, and their writes would be fenced
off anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from runtime.app import Baton
from runtime.connection import connect
from runtime.logs import run_log_context
from runtime.metrics import Metrics
from runtime.scripts import Claimed, Outcome, Scripts, released

__all__ = ["StallRelease"]

logger = logging.getLogger("baton.watchdog")

#: the longest a lease may have left, at most, when the runs are given back: the give-back (a new
#: connection and one call per partition) must land before it expires
MOST_LEFT_S = 1.0


class StallRelease:
    """Gives back, from the watchdog's thread, the runs a blocked event loop holds up (module docstring)."""

    def __init__(self, app: Baton, metrics: Metrics, running: Callable[[], list[tuple[Claimed, float]]],
                 given_back: set[str], blocking: set[str]) -> None:
        self.app = app
        self.metrics = metrics
        #: the runs the executor runs and the seconds each lease surely still holds (read from the thread)
        self.running = running
        #: the runs given back (the executor's: it cancels them when the loop runs again)
        self.given_back = given_back
        #: the run found blocking the loop (the executor's: it fails that run's attempt when the loop runs
        #: again, if the block outlasted its lease)
        self.blocking = blocking
        #: how little a lease may have left before its run is given back
        self.left_s = min(MOST_LEFT_S, app.settings.lease_ttl_ms / 4000)

    def blocked_by(self, culprit: str) -> None:
        """Note run ``culprit`` as the one blocking the loop (called in the watchdog's thread)."""
        self.blocking.add(culprit)

    def due(self, culprit: str) -> list[Claimed]:
        """The runs to give back now while run ``culprit`` blocks the loop: every other one not given back
        yet, once one of their leases has less than ``left_s`` left (none before)."""
        others = [(c, left) for c, left in self.running() if c.run_id != culprit and c.run_id not in self.given_back]
        if not others or min(left for _, left in others) > self.left_s:
            return []
        return [c for c, _ in others]

    def give_back(self, culprit: str, runs: list[Claimed]) -> None:
        """Give ``runs`` back uncharged (called in the watchdog's thread, the loop blocked)."""
        # noted first: once the loop runs again (it may, at any moment) the executor cancels them, and gives
        # them back itself if this call did not get to
        self.given_back.update(c.run_id for c in runs)
        try:
            asyncio.run(self._finish(runs))
        except Exception as exc:  # noqa: BLE001 - then the reapers judge them, as without this
            logger.warning("could not give back the runs held up by run %s blocking the event loop: %s",
                           culprit, exc)
            return
        for c in runs:
            self.metrics.leases_lost.labels(stage="stall").inc()
            with run_log_context(c.run_id, c.job, c.attempt):
                logger.warning("run %s blocks the event loop: run %s given back, uncharged, before its lease "
                               "expired", culprit, c.run_id)

    async def _finish(self, runs: list[Claimed]) -> None:
        settings = self.app.settings
        client = connect(settings.redis_url, cluster=settings.redis_cluster)
        try:
            scripts = Scripts(client, self.app.keys, settings)
            by_partition: dict[int, list[Outcome]] = {}
            for c in runs:
                by_partition.setdefault(c.partition, []).append(released(c.run_id, c.token, "stall"))
            for index, outcomes in by_partition.items():
                await scripts.finish(self.app.keys.partitions[index], outcomes)
        finally:
            await client.aclose()
