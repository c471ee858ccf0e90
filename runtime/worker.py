"""Running a node: event loop, logging, Redis (given or embedded), metrics, supervisor."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import sys
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server

from .app import Baton
from .connection import EmbeddedServer
from .devnode import forget_api, record_api
from .errors import ConfigError, RedisUnavailable
from .logs import configure_logging, node_id_var
from .metrics import Metrics
from .settings import Settings, check_embedded_allowed, env_warnings, setting_names

__all__ = ["DEFAULT_API_PORT", "load_app", "run_api", "run_worker", "serve"]

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


async def serve(app: Baton, metrics: Metrics | None = None) -> int:
    """Run the supervisor until drained; returns the process exit code."""
    from actors.supervisor import Supervisor

    supervisor = Supervisor(app, metrics)
    try:
        await supervisor.run()
    finally:
        await app.close()
    return supervisor.exit_code


def _start_logging(settings: Settings) -> None:
    """Configure logging for this process, then report unknown BATON_* variables in it."""
    configure_logging(settings.log_format, settings.log_level)
    node_id_var.set(settings.node_id)
    for warning in env_warnings():
        logger.warning("%s", warning)


def run_worker(app: Baton, settings: Settings) -> int:
    """Entry point of ``baton worker``: blocks until the node has drained."""
    _start_logging(settings)
    # metrics first: a port it cannot bind stops the node before it starts a server
    metrics = Metrics()
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=metrics.registry)
        except OSError as exc:  # in use, not ours to bind, or an unknown host
            raise ConfigError(
                f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} "
                f"({setting_names('metrics_host')}, {setting_names('metrics_port')}): {exc.strerror or exc}"
            ) from exc
        logger.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
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
    try:
        return _run(serve(app, metrics))
    finally:
        if embedded is not None:
            forget_api(settings)
            embedded.stop()


#: the port ``baton api`` listens on when api_port is 0
DEFAULT_API_PORT = 8480


def run_api(app: Baton, settings: Settings) -> int:
    """Entry point of ``baton api``: the HTTP API alone (no executors), until SIGTERM/SIGINT."""
    _start_logging(settings)
    if not settings.redis_url:
        raise ConfigError(f"baton api needs {setting_names('redis_url')} (the embedded server is `baton worker`'s)")
    if not settings.api_port:
        settings = settings.with_changes(api_port=DEFAULT_API_PORT)
    app.configure(settings)
    return _run(_serve_api(app))


async def _serve_api(app: Baton) -> int:
    import signal

    from prometheus_client import CollectorRegistry
    from redis.exceptions import RedisError

    from actors.api import Api

    from .topology import check_deployment

    try:
        # a worker's refusals (another partition count, a Cluster without the flag: seen here as
        # a redirect, since the API's ACL user has no INFO); a Redis that is down is no reason
        # not to serve: readiness says so
        await check_deployment(app.redis, app.keys.deployment, app.settings)
    except (RedisError, OSError, RedisUnavailable) as exc:
        logger.warning("could not check the deployment at start (%s); serving anyway", exc)
    api = Api(app, CollectorRegistry())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, api.stop)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    try:
        await api.run()
    except OSError as exc:
        logger.error("cannot serve the API on %s:%d: %s", app.settings.api_host, api.port, exc)
        return 1
    finally:
        await app.close()
    return 0


def _run(coro: Any) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows lacks it
        return int(asyncio.run(coro))
    return int(uvloop.run(coro))
