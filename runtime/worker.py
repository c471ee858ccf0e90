"""Running a node: event loop, logging, Redis (given or embedded), metrics, supervisor."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from .app import Baton
from .cancelling import cancel_and_wait
from .devnode import forget_api, record_api
from .embedded import EmbeddedServer, alive_server
from .errors import ConfigError, RedisUnavailable
from .listening import cannot_serve, listening_sockets
from .logs import configure_logging, node_id_var
from .metrics import Metrics, process_metrics
from .probes import Health, start_probe_server
from .settings import Settings, check_embedded_allowed, env_warnings, setting_names
from .stop_signals import DRAIN_HAND_BACK_S, EXIT_ALLOWANCE_S, StopSignals, exit_deadline, unless_stopped
from .tracing import require as require_tracing

__all__ = ["DEFAULT_API_PORT", "api_listening", "load_app", "run_api", "run_worker", "serve", "serve_metrics"]

logger = logging.getLogger("baton.worker")


def load_app(spec: str) -> Baton:
    """Import ``module:attribute`` and return the Baton app it names."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigError(f"--app must look like module:attribute, got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if not isinstance(app, Baton):
        raise ConfigError(f"{spec!r} is not a Baton app")
    return app


async def serve(app: Baton, metrics: Metrics | None = None, health: Health | None = None,
                signals: StopSignals | None = None, on_stop: Callable[[float], None] | None = None,
                api_sockets: Sequence[socket.socket] = ()) -> int:
    """Run the supervisor until drained (SIGTERM and SIGINT drain it); returns the process exit code.
    ``on_stop`` is called once the node is asked to stop, with the seconds its drain may take at most;
    ``api_sockets``: where the API listens (api_listening), when the process bound them at its start."""
    from actors.supervisor import Supervisor

    supervisor = Supervisor(app, metrics, health=health, api_sockets=api_sockets)
    drain_s = app.settings.shutdown_grace_s + DRAIN_HAND_BACK_S
    # before anything waits for Redis: a node stopped while its Redis is not reachable yet exits 0; and
    # told at signal time, not once the loop gets to it (a handler may be blocking the loop)
    (signals or StopSignals()).attach(supervisor.on_stop_signal, (lambda: on_stop(drain_s)) if on_stop else None)

    async def stopping() -> None:  # a stop asked for otherwise: the API's drain request, a spent budget
        await supervisor.shutdown_requested.wait()
        if on_stop is not None:
            on_stop(drain_s)

    told = asyncio.ensure_future(stopping())
    try:
        await supervisor.run()
    finally:
        told.cancel()
        await app.close()
    return supervisor.exit_code


def _start_logging(settings: Settings) -> None:
    """Configure logging for this process, then report unknown BATON_* variables in it."""
    configure_logging(settings.log_format, settings.log_level)
    node_id_var.set(settings.node_id)
    require_tracing(settings.tracing)
    for warning in env_warnings():
        logger.warning("%s", warning)


def serve_metrics(settings: Settings, registry: CollectorRegistry, health: Health | None = None) -> None:
    """Serve ``registry`` at ``metrics_host:metrics_port/metrics`` from a thread (nothing when the port is 0),
    and a worker's ``/livez`` and ``/readyz`` (runtime/probes.py) when ``health`` is given.

    Its own port, apart from the public API port: scraped inside the cluster, never exposed through the
    API's ingress. A port it cannot bind is a ConfigError, raised before the process starts any work.
    """
    if not settings.metrics_port:
        return
    try:
        start_probe_server(settings.metrics_host, settings.metrics_port, registry, health)
    except OSError as exc:  # in use, not ours to bind, or an unknown host
        raise cannot_serve("metrics", "metrics", settings.metrics_host, settings.metrics_port, exc) from exc
    logger.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)


def api_listening(settings: Settings) -> list[socket.socket]:
    """The sockets of the node's API (none when ``api_port`` is 0), bound before the process starts any
    work: a port it cannot have is a ConfigError (runtime/listening.py)."""
    if not settings.api_port:
        return []
    return listening_sockets("the API", "api", settings.api_host, settings.api_port)


def run_worker(app: Baton, settings: Settings, signals: StopSignals | None = None) -> int:
    """Entry point of ``baton worker``: blocks until the node has drained. ``signals``: made when the
    process started (a SIGTERM during the start stops the node once it can drain)."""
    signals = signals or StopSignals()
    _start_logging(settings)
    # metrics first: a port it cannot bind stops the node before it starts a server
    metrics = Metrics()
    health = Health(settings.loop_stall_limit_s)
    try:
        serve_metrics(settings, metrics.registry, health)
        api_sockets = api_listening(settings)
    except ConfigError as exc:
        raise ConfigError(f"{exc}{_node_running_here(settings)}") from None
    embedded: EmbeddedServer | None = None
    if not settings.redis_url:
        check_embedded_allowed()  # no Redis configuration at all: the quick start
        embedded = EmbeddedServer(settings.embedded_dir, settings.embedded_port or None)
        url = embedded.start()
        logger.info("no Redis configured: using the embedded server at %s (AOF on)", url)
        settings = settings.with_changes(redis_url=url)
    app.configure(settings)
    if embedded is not None and settings.api_port:
        record_api(settings)  # the CLI run in this checkout finds the development node's API
    # objects that live as long as the process (modules, the app, settings) are
    # moved out of the collector's way: fewer, shorter gen-2 pauses mid-pickup
    gc.collect()
    gc.freeze()
    deadlines: list[threading.Timer] = []

    def exit_in_time(drain_s: float) -> None:
        # past the drain's own deadline, whatever keeps the process (a handler blocking the loop,
        # a task that will not end) must not outlive the kubelet's grace: it would SIGKILL us
        if not deadlines:  # (the first stop counts)
            deadlines.append(exit_deadline(drain_s + EXIT_ALLOWANCE_S, embedded.stop if embedded else None))

    def stop_embedded() -> None:
        if embedded is not None:
            forget_api(settings)
            embedded.stop()

    async def serving() -> int:
        # the embedded server is this node's to keep: started again if it goes (nothing else would)
        keeper = asyncio.ensure_future(embedded.keep_alive()) if embedded is not None else None
        try:
            code = await serve(app, metrics, health, signals, exit_in_time, api_sockets)
        finally:
            if keeper is not None:
                await cancel_and_wait([keeper])
        await _leave_stuck_tasks(code, None if embedded is None else stop_embedded)
        return code

    try:
        code = _run(serving())
    finally:
        for sock in api_sockets:
            sock.close()
        for deadline in deadlines:
            deadline.cancel()
        if embedded is not None:
            forget_api(settings)
            embedded.stop()
    _leave_stuck_handler_threads(code)
    return code


#: How long the end of a drained node waits for its handler threads before it leaves those still running.
IDLE_THREADS_END_S = 1.0


async def _leave_stuck_tasks(code: int, before_exit: Callable[[], None] | None) -> None:
    """End the process now, with ``code``, when a task still runs after the node drained: a handler that
    ignores cancellation, whose run the drain gave back (or whose outcome was recorded when the executor
    abandoned it). The event loop's own end would cancel it and wait for it for ever, up to the hard exit
    past the grace."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    if not others or not (await asyncio.wait(others, timeout=IDLE_THREADS_END_S))[1]:
        return
    stuck = [t for t in others if not t.done()]
    logger.warning("%d task(s) still running after the drain (handlers that ignore cancellation; their runs were "
                   "given back or recorded): the process ends without waiting for them", len(stuck))
    if before_exit is not None:
        before_exit()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _leave_stuck_handler_threads(code: int) -> None:
    """End the process now, with ``code``, when a plain-def handler's thread still runs after the node
    drained (it ignored cancellation; a thread cannot be stopped): the interpreter's exit would wait for
    it, past the drain's bound and into the kubelet's SIGKILL. Its run was given back by the drain."""
    from actors.executor import JOB_THREADS

    # (idle pool threads end within moments of the executor's shutdown: only a thread still running
    # a handler outlives this wait)
    deadline = time.monotonic() + IDLE_THREADS_END_S
    for thread in [t for t in threading.enumerate() if t.name.startswith(JOB_THREADS)]:
        thread.join(max(deadline - time.monotonic(), 0))
    stuck = [t for t in threading.enumerate() if t.name.startswith(JOB_THREADS) and t.is_alive()]
    if not stuck:
        return
    logger.warning("%d handler thread(s) still running after the drain (plain def handlers that ignore "
                   "cancellation): the process ends without waiting for them", len(stuck))
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _node_running_here(settings: Settings) -> str:
    """What to add to a port-in-use error of the quick start when a node of this checkout runs already
    (its embedded server answers): the usual cause of a second ``./dev up``."""
    if settings.redis_url:
        return ""
    found = alive_server(Path(settings.embedded_dir) / "server.json")
    if found is None:
        return ""
    return (f"; a node of this checkout seems to run already (its embedded server answers on 127.0.0.1:{found[0]}): "
            f"stop it first, or give this one other ports")


#: the port ``baton api`` listens on when api_port is 0
DEFAULT_API_PORT = 8480


def run_api(app: Baton, settings: Settings, signals: StopSignals | None = None) -> int:
    """Entry point of ``baton api``: the HTTP API alone (no executors), until SIGTERM/SIGINT."""
    signals = signals or StopSignals()
    _start_logging(settings)
    if not settings.redis_url:
        raise ConfigError(f"baton api needs {setting_names('redis_url')} (the embedded server is `baton worker`'s)")
    if not settings.api_port:
        settings = settings.with_changes(api_port=DEFAULT_API_PORT)
    registry = CollectorRegistry()
    process_metrics(registry)
    serve_metrics(settings, registry)
    sockets = api_listening(settings)
    app.configure(settings)
    try:
        return _run(_serve_api(app, registry, signals, sockets))
    finally:
        for sock in sockets:
            sock.close()


async def _serve_api(app: Baton, registry: CollectorRegistry, signals: StopSignals,
                     sockets: Sequence[socket.socket]) -> int:
    from redis.exceptions import RedisError

    from actors.api import Api

    from .redis_faults import REFUSED_CREDENTIALS, credentials_refused
    from .topology import check_deployment

    api = Api(app, registry, sockets=sockets)
    # before the deployment check, which may wait for a Redis that is not reachable yet
    signals.attach(api.stop)
    checked = await unless_stopped(check_deployment(app.redis, app.keys.deployment, app.settings), api.stopping)
    if checked is None:  # asked to stop while it checked: nothing served, nothing to drain
        await app.close()
        return 0
    try:
        # a worker's refusals (another partition count, a Cluster without the flag: seen here as
        # a redirect, since the API's ACL user has no INFO); a Redis that is down is no reason
        # not to serve: readiness says so
        checked.result()
    except REFUSED_CREDENTIALS as exc:  # waiting would not heal them: stop, as a worker does
        await app.close()
        raise credentials_refused(exc) from None
    except (RedisError, OSError, RedisUnavailable) as exc:
        logger.warning("could not check the deployment at start (%s); serving anyway", exc)
    try:
        await api.run()
    finally:
        await app.close()
    return 0


def _run(coro: Any) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows lacks it
        return int(asyncio.run(coro))
    return int(uvloop.run(coro))
