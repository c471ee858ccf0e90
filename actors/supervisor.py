"""Supervisor: builds the node's actors, keeps them running, heartbeats, drains.

Restarts are one-for-one: an actor whose run() raises is started again after a
short backoff, clean (every attribute rebuilt except what the actor names in
``survives``, such as held leases), within a budget of ``max_restarts`` per
``restart_window_s``; past the budget the node shuts down with exit code 1 so
Kubernetes restarts the pod. A Redis outage (runtime/redis_faults.py: the link, or a
server that cannot serve commands now, such as one out of memory) does not spend the budget.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

from runtime import __version__
from runtime.app import Baton
from runtime.cancelling import set_within
from runtime.connection import check_eviction_policy
from runtime.errors import RedisUnavailable
from runtime.logs import node_id_var
from runtime.messages import AskBusy, Drain, ReleaseAll, WhenIdle, WhenReleased
from runtime.metrics import Metrics
from runtime.probes import Health
from runtime.redis_faults import (
    OUTAGE_PAUSE_MAX_S,
    REFUSED_CREDENTIALS,
    credentials_refused,
    described,
    is_outage,
    server_state,
)
from runtime.run_tasks import adopting_tasks
from runtime.scripts import new_incarnation
from runtime.stop_signals import DRAIN_HAND_BACK_S, unless_stopped
from runtime.topology import SentinelStartWatch, check_deployment, check_fsync, check_server

from .api import Api
from .base import Actor, answered, being_cancelled, end_task
from .delivery import Delivery
from .executor import CANCEL_GRACE_S, Executor
from .fetcher import Fetcher, served_queues
from .intake import Intake, ensure_group, submit_streams
from .leaser import Leaser
from .listener import Listener
from .node_start import ready_partitions, update_libraries
from .notifier import Notifier
from .observer import Observer
from .receiver import Receiver
from .reporter import Reporter
from .restart_backoff import STEADY_LIFE_S, RestartBackoff
from .scheduler import Scheduler
from .stall_release import StallRelease
from .watchdog import Watchdog

__all__ = ["Supervisor"]

class Supervisor(Actor[None]):
    """Owns the node: intake, leaser, executor, reporter and listener actors."""

    name = "supervisor"

    def __init__(self, app: Baton, metrics: Metrics | None = None, intake: bool = True,
                 health: Health | None = None, api_sockets: Sequence[socket.socket] = ()) -> None:
        super().__init__()
        self.app = app
        self.settings = app.settings
        self.metrics = metrics or Metrics()
        #: what /livez and /readyz on the metrics port report
        self.health = health or Health(self.settings.loop_stall_limit_s)
        self.exit_code = 0
        self.shutdown_requested = asyncio.Event()
        #: a second stop signal came during the drain: the grace ends at once
        self.hurried = asyncio.Event()
        #: when the stop was asked for (loop time): the drain's deadline counts from it
        self.stop_requested_at = 0.0
        self.started = asyncio.Event()
        # wiring: the mailboxes first, then each actor with its own and those it sends to
        settings = self.settings
        to_executor, to_fetcher, to_leaser, to_reporter = (
            Executor.mailbox(settings), Fetcher.mailbox(settings), Leaser.mailbox(settings), Reporter.mailbox(settings))
        self.executor = Executor(app, self.metrics, inbox=to_executor, reporter=to_reporter)
        # this process, as its lease renewals name it: begun in each partition before its first claim there
        incarnation = new_incarnation()
        self.fetcher = Fetcher(app, self.metrics, inbox=to_fetcher, executor=to_executor, leaser=to_leaser,
                               incarnation=incarnation)
        self.leaser = Leaser(app, self.metrics, inbox=to_leaser, executor=to_executor, fetcher=to_fetcher,
                             incarnation=incarnation)
        self.reporter = Reporter(app, self.metrics, inbox=to_reporter, fetcher=to_fetcher, leaser=to_leaser)
        self.listener = Listener(app, fetcher=to_fetcher, executor=to_executor, leaser=to_leaser)
        # runs leased to this node where they are created: popped by the receiver, or returned to an intake
        delivery = Delivery(executor=to_executor, leaser=to_leaser, fetcher=to_fetcher) if settings.handoff else None
        self.receiver = Receiver(app, delivery) if delivery is not None else None
        # one intake per submission stream: the node-wide one and, with partition_streams, each partition's
        self.intakes = ([Intake(app, self.metrics, stream, delivery) for stream in submit_streams(app)]
                        if intake else [])
        # the cluster gauges come from one node: the scheduler lease's holder (an election that exists anyway)
        self.observer = Observer(app, self.metrics, exporter=lambda: self.scheduler.holding)
        # the HTTP API, in this process when api_port is set (or alone: `baton api`), on the sockets the
        # process bound at its start (runtime/worker.py) when it did
        self.api = (Api(app, self.metrics.registry, ready=lambda: not self.shutdown_requested.is_set(),
                        sockets=api_sockets) if self.settings.api_port else None)
        self.scheduler = Scheduler(app, self.metrics)
        # completion hooks and webhooks (outboxes, deliveries); its outbox gauge is a cluster one, like the observer's
        self.notifier = (Notifier(app, self.metrics, exporting=lambda: self.scheduler.holding)
                         if settings.notifier else None)
        self.watchdog = Watchdog(app, self.metrics, on_stall=self.executor.on_stall, health=self.health,
                                 release=StallRelease(app, self.metrics, self.executor.running_leases,
                                                      self.executor.given_back, self.executor.blocking))
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, deque[float]] = {}
        #: when the heartbeat first failed on a Redis outage (None while it reaches Redis)
        self.redis_lost_at: float | None = None
        #: when a heartbeat last got through (monotonic): the outage began after it
        self.redis_ok_at: float | None = None

    @property
    def actors(self) -> list[Actor[Any]]:
        """Every supervised actor, in start order."""
        actors: list[Actor[Any]] = [self.watchdog, self.reporter, self.executor, self.leaser, self.fetcher,
                                    self.listener, self.observer]
        if self.receiver is not None:
            actors.append(self.receiver)
        actors.extend(self.intakes)
        if self.api is not None:
            actors.append(self.api)
        actors.append(self.scheduler)
        if self.notifier is not None:
            actors.append(self.notifier)
        return actors

    def on_stop_signal(self) -> None:
        """SIGTERM / SIGINT: the first begins the drain; another during it ends the grace at once (running
        handlers are cancelled and their runs given back, not charged), as a second Ctrl-C does in Celery or RQ."""
        if not self.shutdown_requested.is_set():
            self.request_shutdown()
        elif not self.hurried.is_set():
            self.log.warning("stop signal again: the grace ends now; running runs are given back")
            self.hurried.set()

    def request_shutdown(self) -> None:
        """Begin a graceful drain (SIGTERM / SIGINT)."""
        if not self.shutdown_requested.is_set():
            self.log.info("shutdown requested: draining (grace %.1fs)", self.settings.shutdown_grace_s)
            self.health.draining = True
            self.stop_requested_at = asyncio.get_running_loop().time()
            self.shutdown_requested.set()

    async def run(self) -> None:
        """Start everything, heartbeat until asked to stop, then drain and stop."""
        app = self.app
        node_id_var.set(self.settings.node_id)  # every log line of this node's actors names it
        if not await self._prepare():
            return
        self.metrics.slots_total.set(self.settings.concurrency)
        self.metrics.init_jobs(app.jobs.names())
        self.metrics.init_node(served_queues(app), [self.name, *(actor.name for actor in self.actors)])
        self.metrics.set_lease_ttl(self.settings.lease_ttl_ms / 1000)
        app.scripts.on_call = self.metrics.observe_redis
        app.scripts.on_released = lambda runs: self.metrics.count_released(c.job for c in runs)
        loop = asyncio.get_running_loop()
        # tasks a handler starts are cancelled with its run (runtime/run_tasks.py)
        restore_task_factory = adopting_tasks(loop)
        try:
            await self._run_actors(loop)
        finally:
            restore_task_factory()

    async def _run_actors(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the actors, heartbeat until asked to stop, then drain and stop."""
        for actor in self.actors:
            self.tasks[actor.name] = loop.create_task(self._supervise(actor), name=f"actor:{actor.name}")
        app = self.app
        self.log.info(
            "node %s started: %d slots, jobs %s, queues %s, %d partition(s)", self.settings.node_id,
            self.settings.concurrency, ",".join(app.jobs.names()) or "-", ",".join(served_queues(app)) or "-",
            self.settings.partitions,
        )
        self.started.set()
        self.health.started = True
        while not self.shutdown_requested.is_set():
            # raced against the stop: a heartbeat on a black-holed connection waits out the client's timeouts
            beat = await unless_stopped(self._heartbeat(), self.shutdown_requested)
            if beat is None:
                break
            beat.result()
            await set_within(self.shutdown_requested, self.settings.renew_interval_ms / 1000)
        # not wait_for: it waits for the cancelled drain to end, and a write of the drain cancelled on a
        # black-holed connection, or an actor that takes long to end, would hold it past the deadline
        drain = asyncio.ensure_future(self.drain())
        deadline = self.stop_requested_at + self.settings.shutdown_grace_s + DRAIN_HAND_BACK_S
        await asyncio.wait((drain,), timeout=max(deadline - loop.time(), 0.0))
        if drain.done():
            drain.result()
            return
        self.log.error("drain not finished %.0fs after the grace period (Redis does not answer?): stopping "
                       "anyway; runs not given back return to the queue when their leases expire", DRAIN_HAND_BACK_S)
        tasks = [drain, *(task for task in self.tasks.values() if not task.done())]
        for task in tasks:  # (the actors' supervision ends with them: nothing restarts)
            task.cancel()
        await asyncio.wait(tasks, timeout=1.0)

    async def _prepare(self) -> bool:
        """Check the server and register this node's jobs; wait out a Redis that is
        not reachable yet (a pod may start before its Redis) or cannot serve commands (out of
        memory, say). False if asked to stop first.
        A misconfigured server or deployment stops the node here (ConfigError), never later."""
        backoff = 0.2
        watch = SentinelStartWatch(self.settings.redis_url)
        while not self.shutdown_requested.is_set():
            state = "not reachable"
            attempt = await unless_stopped(self._start_checks(watch), self.shutdown_requested)
            if attempt is None:
                break
            try:
                reason = attempt.result()
                if reason is None:
                    return True
            except REFUSED_CREDENTIALS as exc:
                raise credentials_refused(exc) from None
            except (RedisError, RedisClusterException, RedisUnavailable) as exc:
                if not is_outage(exc):
                    raise
                reason = described(exc)[:300]
                if server_state(exc):  # out of memory, a replica, too few replicas ...
                    state = "refuses commands"
            if self.shutdown_requested.is_set():
                break
            self.metrics.redis_reconnects.labels(actor=self.name).inc()
            self.log.warning("Redis %s at start (%s); retrying in %.1fs", state, reason, backoff)
            if not await set_within(self.shutdown_requested, backoff):
                backoff = min(backoff * 2, 5.0)
        self.log.info("node %s stopped before it started (exit code %d)", self.settings.node_id, self.exit_code)
        return False

    async def _start_checks(self, watch: SentinelStartWatch) -> str | None:
        """One attempt at the start's checks and registrations: None when done, else why Redis cannot
        be used yet (Sentinel's view); Redis errors propagate."""
        reason = await watch.problem()
        if reason is not None:
            return reason
        await check_server(self.app.redis, self.settings)
        await check_fsync(self.app.redis, self.settings)
        await check_deployment(self.app.redis, self.app.keys.deployment, self.settings)
        await check_eviction_policy(self.app.redis)
        # on Redis Cluster a partition's master may be down now: the node-wide records
        # must be there, but a partition that does not answer waits for its master (the
        # fetcher readies it before its first claim there, its stream's intake makes its
        # group), and the node serves the others meanwhile
        await self.app.publish_jobs()
        await ready_partitions(self.app, self.fetcher.readied, self.log, self.fetcher.incarnation)
        await update_libraries(self.app, self.log)
        for intake in self.intakes:
            if intake.stream.partition is None:
                await ensure_group(self.app, intake.stream.key)
        return None

    async def _supervise(self, actor: Actor[Any]) -> None:
        """Run the actor; restart it clean (see Actor.start_afresh) after a crash.

        A Redis outage is ridden out: an actor that lost Redis is started again
        every 1 s at most, counted as a reconnect (not a restart) and logged once
        per outage as waiting, and it does not spend the restart budget, so a
        node exits only for a cause that persists once Redis answers again. Other
        crashes back off up to 5 s; a long healthy life starts the backoff over.
        """
        backoff = RestartBackoff()
        waiting_since: float | None = None  # when the actor began waiting for Redis (None: it is not)
        while True:
            began = time.monotonic()
            try:
                await actor.live()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if being_cancelled():
                    # stopped while the actor failed (an essential task's error raced the cancel, and the
                    # actor's life took the cancel for that task's): a restart would run on, uncancelled
                    raise asyncio.CancelledError from exc
                outage = is_outage(exc)
                lived_s = time.monotonic() - began
                delay = backoff.after_crash(lived_s, outage)
                if isinstance(exc, RedisError):
                    self.metrics.redis_errors.labels(actor=actor.name).inc()
                if outage:
                    # Redis down, failing over or refusing commands: a state of the server, not a
                    # crash of the actor. It is counted as a reconnect, and said once per outage, so
                    # a Redis restart neither fires BatonActorRestarting nor fills the log with errors
                    self.metrics.redis_reconnects.labels(actor=actor.name).inc()
                    if waiting_since is None or lived_s >= STEADY_LIFE_S:
                        waiting_since = began
                        self.log.warning("actor %s waits for Redis: %s; trying again every %.1fs at most",
                                         actor.name, described(exc), OUTAGE_PAUSE_MAX_S)
                    else:
                        self.log.debug("actor %s still waits for Redis (%.0fs): %s", actor.name,
                                       time.monotonic() - waiting_since, described(exc))
                else:
                    waiting_since = None
                    self.metrics.actor_restarts.labels(actor=actor.name).inc()
                    self.log.error("actor %s crashed: %s; restarting in %.1fs", actor.name, described(exc), delay,
                                   exc_info=exc)
                if not outage and self._budget_spent(actor.name):
                    self.log.critical(
                        "actor %s restarted %d times in %.0fs; giving up", actor.name,
                        len(self.restarts[actor.name]), self.settings.restart_window_s,
                    )
                    self.exit_code = 1
                    self.health.fatal = f"actor {actor.name} spent its restart budget: {described(exc)}"[:500]
                    self.request_shutdown()
                    return
                if not await actor.sleep(delay):
                    return
                actor.start_afresh()

    def _budget_spent(self, name: str) -> bool:
        """Note one restart of ``name``; true once more than max_restarts fall in the window."""
        window = self.restarts.setdefault(name, deque())
        now = time.monotonic()
        window.append(now)
        while window and window[0] < now - self.settings.restart_window_s:
            window.popleft()
        return len(window) > self.settings.max_restarts

    async def _heartbeat(self) -> None:
        keys = self.app.keys
        ttl_ms = self.settings.lease_ttl_ms * 2
        busy = await self._ask_busy()
        try:
            # stamped with the Redis clock, as leases are: a node whose own clock is off
            # (by an hour, say) still shows as live, and is not pruned by the others
            seconds, micros = await self.app.redis.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            leases = self.metrics.registry.get_sample_value("baton_leases_held")
            pipe = self.app.redis.pipeline(transaction=False)
            # written by every node's start (check_deployment): gone only if Redis lost its data
            pipe.exists(keys.deployment)
            pipe.hset(keys.node(self.settings.node_id), mapping={
                "node_id": self.settings.node_id, "heartbeat_at": now_ms, "slots": self.settings.concurrency,
                "busy": busy if busy is not None else "", "jobs": ",".join(self.app.jobs.names()),
                "queues": ",".join(served_queues(self.app)), "leases": int(leases or 0), "version": __version__,
                "labels": self.settings.label_text,
            })
            pipe.pexpire(keys.node(self.settings.node_id), ttl_ms)
            pipe.zadd(keys.nodes, {self.settings.node_id: now_ms})
            pipe.zremrangebyscore(keys.nodes, "-inf", now_ms - 3600_000)
            # an operator's drain request (runtime/nodes.py): taken once, then acted on like SIGTERM
            pipe.get(keys.drain_request(self.settings.node_id))
            pipe.delete(keys.drain_request(self.settings.node_id))
            started = time.perf_counter()
            replies = await pipe.execute()
            registered, drain = replies[0], replies[-2]
            self.metrics.observe_redis("heartbeat", time.perf_counter() - started)
            self.metrics.heartbeat_timestamp.set(now_ms / 1000)
            self.health.redis_ok = True
            self.health.redis_error = ""
            now = time.monotonic()
            if self.redis_lost_at is not None:
                # heartbeats are renew_interval_ms apart: the outage began between the last that got
                # through and the first that failed, so both bounds are said
                longest = f"-{now - self.redis_ok_at:.1f}" if self.redis_ok_at is not None else "+"
                durable = (f"; writes that wait for {self.settings.durable_replicas} replica(s) go on once one "
                           "confirms them" if self.settings.durable_replicas else "")
                self.log.info("Redis answers again, after %.1f%ss without an answer%s", now - self.redis_lost_at,
                              longest, durable)
                self.redis_lost_at = None
            self.redis_ok_at = now
            if not registered:
                await self._register_again()
            if drain is not None:
                self.log.info("drain requested through the API")
                self.request_shutdown()
        except (RedisError, RedisClusterException) as exc:
            self.health.redis_ok = False
            self.health.redis_error = described(exc)[:300]
            if is_outage(exc):
                self.metrics.redis_reconnects.labels(actor=self.name).inc()
                if self.redis_lost_at is None:
                    self.redis_lost_at = time.monotonic()
            self.log.warning("heartbeat failed: %s", exc)

    async def _register_again(self) -> None:
        """Publish again what this node published at start: Redis no longer holds the deployment's record
        (a server restarted without its data, a replica promoted without it). Without this, job limits
        and schedules would be gone until a node restarted, and every intake would fail on its missing
        consumer group."""
        self.log.warning("Redis no longer holds this deployment's records (restarted without its data?): "
                         "registering this node's jobs, limits and schedules again")
        await self.app.register_jobs()
        for intake in self.intakes:
            await ensure_group(self.app, intake.stream.key)
        # the record last: a registration cut short by an error is made again at the next heartbeat
        await check_deployment(self.app.redis, self.app.keys.deployment, self.settings)

    async def drain(self) -> None:
        """Stop taking work, let handlers finish within the grace period, give back the rest."""
        try:  # shown by GET /v1/nodes until the record goes at the end of the drain
            await self.app.redis.hset(self.app.keys.node(self.settings.node_id), "draining", "1")
        except RedisError:
            pass
        for intake in self.intakes:
            # cancelling intake mid-batch is safe: unacknowledged entries are
            # delivered again and run creation is idempotent on the entry id
            intake.stop()
        for intake in self.intakes:
            await self._cancel(intake, wait_s=0)
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()
        await self.fetcher.send(Drain(closed))
        if not await answered(closed, 2.0):
            # runs handed to this node before it stopped waiting are run like the others
            self.log.warning("runs handed to this node did not all arrive; their leases will expire")
        if not await self._ask_idle(self.settings.shutdown_grace_s, until=self.hurried):
            self.log.warning("grace period over with %s run(s) executing; releasing them",
                             await self._ask_busy())
            await self.executor.send(ReleaseAll())
            # a handler that ignores cancellation is abandoned by the executor after its grace
            if not await self._ask_idle(CANCEL_GRACE_S + 1.0):
                self.log.error("handlers did not stop after cancellation; their leases will expire")
        # wait until the reporter has written every outcome
        released: asyncio.Future[None] = loop.create_future()
        await self.fetcher.send(WhenReleased(released))
        await answered(released, 10.0, self.tasks["reporter"])
        # the scheduler stops first among the rest and hands its lease over at once
        self.scheduler.stop()
        await self._cancel(self.scheduler)
        if self.notifier is not None:
            # outcomes are written: what its outboxes still hold (and deliveries cut short) other
            # nodes take over once their entries sit unacknowledged for notify_claim_idle_ms
            self.notifier.stop()
            await self._cancel(self.notifier, wait_s=1.0)
        quick_ones: list[Actor[Any]] = [self.listener, self.observer, self.watchdog]
        if self.receiver is not None:
            quick_ones.append(self.receiver)
        for quick in quick_ones:
            quick.stop()
            await self._cancel(quick, wait_s=0)
        if self.api is not None:  # served (readiness 503) while draining; stops once work is handed back
            self.api.stop()
            await self._cancel(self.api, wait_s=5)
        for actor in (self.fetcher, self.leaser, self.reporter, self.executor):
            actor.stop()
            await self._cancel(actor)
        # every actor ends with the drain, one this list forgot too: left running, it outlived the node
        # (the notifier once did: it read outboxes on a closed client, and the process could not end)
        for left in self.actors:
            if left.name in self.tasks and not self.tasks[left.name].done():
                self.log.error("actor %s was still running at the end of the drain: stopped", left.name)
                left.stop()
                await self._cancel(left)
        try:
            await self.app.redis.zrem(self.app.keys.nodes, self.settings.node_id)
            await self.app.redis.delete(self.app.keys.node(self.settings.node_id))
        except RedisError:
            pass
        self.log.info("node %s stopped (exit code %d)", self.settings.node_id, self.exit_code)

    async def _ask_idle(self, timeout_s: float, until: asyncio.Event | None = None) -> bool:
        """Ask the executor to say when nothing runs and no granted run waits; False on timeout (or once
        ``until`` is set)."""
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.executor.send(WhenIdle(reply))
        cut_short = asyncio.ensure_future(until.wait()) if until is not None else None
        try:
            return await answered(reply, timeout_s, self.tasks.get("executor"), cut_short)
        finally:
            if cut_short is not None:
                cut_short.cancel()

    async def _ask_busy(self) -> int | None:
        """How many handlers run now, as the executor says (None if it does not answer at once)."""
        reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            self.executor.inbox.send_nowait(AskBusy(reply))
        except asyncio.QueueFull:
            return None
        if not await answered(reply, 1.0, self.tasks.get("executor")):
            return None
        return reply.result()

    async def _cancel(self, actor: Actor[Any], wait_s: float = 2.0) -> None:
        await end_task(self.tasks.get(actor.name), wait_s)
