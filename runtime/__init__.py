"""Baton: durable background jobs for Python on Redis.

The user-facing API: define jobs on a :class:`Baton` app, trigger runs, inspect them.
"""

from .app import Baton
from .context import RunContext
from .errors import (
    BatonError,
    ConfigError,
    LeaseLost,
    NotReplicated,
    PermanentFailure,
    RedisUnavailable,
    Retry,
    RunAlreadyFinished,
    RunNotFinished,
    RunNotFound,
    SubmissionError,
    UnknownJob,
)
from .jobs import Backoff, JobOptions
from .records import Attempt, Run
from .settings import Settings

__all__ = [
    "Attempt",
    "Backoff",
    "Baton",
    "BatonError",
    "ConfigError",
    "JobOptions",
    "LeaseLost",
    "NotReplicated",
    "PermanentFailure",
    "RedisUnavailable",
    "Retry",
    "Run",
    "RunAlreadyFinished",
    "RunContext",
    "RunNotFinished",
    "RunNotFound",
    "Settings",
    "SubmissionError",
    "UnknownJob",
]

__version__ = "0.1.0"
