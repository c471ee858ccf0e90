"""A run's log: ``ctx.log`` and the capture of standard ``logging`` calls made inside a handler."""

from __future__ import annotations

import contextvars
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import RunContext

__all__ = ["RunLogCapture", "RunLogger", "current_run"]

#: The context of the run whose handler is executing (also inside its threads).
current_run: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("baton_current_run", default=None)

_LEVELS = {logging.DEBUG: "info", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
           logging.CRITICAL: "error"}


class RunLogger:
    """``ctx.log.info/warn/error(message, *args, **data)``: a run log entry and a daemon log line.

    The entry is the seed's LogEntry (id, runId, stepName, level, message, data,
    timestamp), in the log of the run whose context this logger is: not of the run
    executing now, which is another for a batch handler's per-run contexts (and for a
    context kept past its attempt, whose lines are then dropped). Standard ``logging``
    calls made while the handler runs are captured into the executing run's log (see
    :class:`RunLogCapture`). Nothing is logged while the run replays code an earlier
    attempt ran (``RunContext.replaying``).
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._logger = _job_logger(ctx.job)

    def _log(self, level: int, message: str, args: tuple[Any, ...], data: dict[str, Any]) -> None:
        if self._ctx.replaying:  # said when that code first ran (RunContext.replaying)
            return
        if self._logger.isEnabledFor(level):  # a daemon line, and RunLogCapture copies it into the run log
            self._logger.log(level, message, *args, extra={"baton_data": data or None, "baton_run": self._ctx},
                             stacklevel=3)
        else:
            # below the daemon's log level (debug, at the default INFO) logging makes no record at all,
            # but a line the handler wrote with ctx.log belongs in the run's log all the same
            self._ctx._add_log(_LEVELS[level], formatted(message, args), data or None, time.time())

    def debug(self, message: str, *args: Any, **data: Any) -> None:
        """Log at debug level (recorded as info in the run log)."""
        self._log(logging.DEBUG, message, args, data)

    def info(self, message: str, *args: Any, **data: Any) -> None:
        """Log at info level."""
        self._log(logging.INFO, message, args, data)

    def warn(self, message: str, *args: Any, **data: Any) -> None:
        """Log at warn level."""
        self._log(logging.WARNING, message, args, data)

    warning = warn

    def error(self, message: str, *args: Any, **data: Any) -> None:
        """Log at error level."""
        self._log(logging.ERROR, message, args, data)


@functools.cache
def _job_logger(job: str) -> logging.Logger:
    """The daemon logger of ``job``'s runs: looked up once per job, not once per run (getLogger takes the
    logging module's lock)."""
    return logging.getLogger(f"baton.job.{job}")


class RunLogCapture(logging.Handler):
    """Copies log records made inside a handler into that run's log.

    Installed once on the root logger by the executor; records from Baton's own
    machinery (``baton.*`` except ``baton.job.*``) are not copied.
    """

    def emit(self, record: logging.LogRecord) -> None:
        ctx = getattr(record, "baton_run", None) or current_run.get()  # (ctx.log names its run)
        if ctx is None:
            return
        if record.name.startswith("baton.") and not record.name.startswith("baton.job."):
            return
        ctx._add_log(_LEVELS.get(record.levelno, "info"), formatted(record.msg, record.args),
                     getattr(record, "baton_data", None), record.created)


def formatted(message: object, args: Any) -> str:
    """A log call's message with its arguments, as logging formats it (``LogRecord.getMessage``); the
    bare message when they do not fit it: a bad format string must not break the handler."""
    text = str(message)
    if not args:
        return text
    try:
        return str(text % args)
    except Exception:  # noqa: BLE001 - (see above)
        return text
