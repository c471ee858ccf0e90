"""The leases an executor may have lost (a stalled loop, a renewal, fencing, an outage): given back, said and
counted once each (baton_leases_lost_total). A part of :class:`actors.executor.Executor`."""

from __future__ import annotations

import logging

from runtime.app import Baton
from runtime.attempt_outcomes import ended
from runtime.errors import OutageOutlastedLease
from runtime.fencing import LeaseClock
from runtime.logs import run_log_context
from runtime.messages import Attempt, CancelRun
from runtime.metrics import Metrics
from runtime.scripts import Claimed, Outcome

__all__ = ["LostLeases"]


class LostLeases:
    """What the executor does with a lease it may have lost. Uses the executor's state; holds none of its own."""

    app: Baton
    metrics: Metrics
    log: logging.Logger
    claimed: dict[str, Claimed]
    leases: dict[str, LeaseClock]
    cancel_reasons: dict[Attempt, str]
    given_back: set[str]
    lost: set[Attempt]
    blocking: set[str]

    def _running(self, run_id: str, token: str = "") -> Claimed | None:
        raise NotImplementedError

    def _cancel(self, run_id: str, reason: str, token: str = "") -> None:
        raise NotImplementedError

    def on_stall(self) -> None:
        """The event loop was blocked (called by the watchdog's thread through the loop, ahead of
        what the handlers wait for): give back every run whose lease may have expired meanwhile,
        before its handler can send another command. A run whose lease still holds is released
        uncharged; one whose lease was taken is fenced off."""
        for run_id in list(self.given_back):  # (given back from the watchdog's thread: said and counted there)
            self.given_back.discard(run_id)
            if (c := self._running(run_id)) is not None:
                self.lost.add((c.run_id, c.token))
            self._cancel(run_id, "stall")
        blocking = set(self.blocking)
        self.blocking.clear()  # (the same set: the watchdog's thread holds it)
        for run_id, lease in list(self.leases.items()):
            if lease.time_left() <= 0:
                c = self._running(run_id)
                if c is not None and (run_id, c.token) not in self.cancel_reasons:
                    self._count_lost(c, "stall")
                    if run_id in blocking:
                        # the run that blocked the loop: its failure, charged (given back uncharged, a handler
                        # that always blocks would run again for ever on a node no other node reaps for)
                        with run_log_context(run_id, c.job, c.attempt):
                            self.log.warning("run %s blocked the event loop past its lease; its attempt failed",
                                             run_id)
                        self._cancel(run_id, "blocked")
                        continue
                    with run_log_context(run_id, c.job, c.attempt):
                        self.log.warning("event loop stalled past the lease of run %s; giving it back", run_id)
                    self._cancel(run_id, "stall")

    def running_leases(self) -> list[tuple[Claimed, float]]:
        """The runs executing here and the seconds each one's lease surely still holds (inf: unknown).
        Read by the watchdog's thread while the loop is blocked (actors/stall_release.py)."""
        out = []
        for c in list(self.claimed.values()):
            lease = self.leases.get(c.run_id)
            out.append((c, lease.time_left() if lease is not None else float("inf")))
        return out

    def _lease_lost(self, msg: CancelRun) -> None:
        """A renewal found the lease gone: stop the handler if it still runs.

        When the handler has already ended, the renewal merely raced the run's
        own finish (or, if the lease really was lost, the finish is fenced and
        counted there), so nothing is counted or logged here.
        """
        if (c := self._running(msg.run_id, msg.token)) is None:
            return
        self._count_lost(c, "renew")
        with run_log_context(msg.run_id, msg.job, msg.attempt):
            self.log.warning("lease of run %s lost; stopping its handler", msg.run_id)
        self._cancel(msg.run_id, "lease_lost", msg.token)

    def _count_lost(self, c: Claimed, stage: str) -> None:
        """Count attempt ``c``'s lease lost, found at ``stage``: once (its outcome's rejection is not counted)."""
        self.metrics.leases_lost.labels(stage=stage).inc()
        self.lost.add((c.run_id, c.token))

    def _was_lost(self, c: Claimed) -> bool:
        """Whether attempt ``c``'s lease was counted lost here (forgotten: its outcome goes out now)."""
        attempt = (c.run_id, c.token)
        if attempt in self.lost:
            self.lost.discard(attempt)
            return True
        return False

    def _outage_outlasted(self, c: Claimed, exc: OutageOutlastedLease) -> Outcome:
        """Redis was out for as long as the lease surely held: like a drain, the run is given back
        uncharged (the outage is no fault of the handler's). If another node reaped the lease
        meanwhile, this outcome is fenced off and the reap recorded the attempt crashed."""
        self._note_outage(c, exc)
        return ended(self.app.settings, c, "released", exc)

    def _note_outage(self, c: Claimed, exc: OutageOutlastedLease) -> None:
        self._count_lost(c, "outage")
        with run_log_context(c.run_id, c.job, c.attempt):
            self.log.warning("%s; giving the run back", exc)
