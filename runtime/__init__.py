"""Baton: durable background jobs for Python on Redis.

The user-facing API: define jobs on a :class:`Baton` app, trigger runs, inspect them.
"""

from .app import Baton
from .context import RunContext
from .cron import CronSchedule
from .errors import (
    BatonError,
    ChildRunFailed,
    ConfigError,
    DuplicateStep,
    JobTimeout,
    LeaseError,
    LeaseLost,
    NonDeterminism,
    NotReplicated,
    OutputTooLarge,
    PermanentFailure,
    QueueFull,
    RedisUnavailable,
    Retry,
    RunAlreadyFinished,
    RunAlreadyReplayed,
    RunError,
    RunExists,
    RunNotFinished,
    RunNotFound,
    RunStatusConflict,
    StepError,
    SubmissionError,
    UnknownJob,
    UnknownParent,
    ValueTooLarge,
    WaitTimeout,
)
from .jobs import Backoff, JobOptions
from .records import Attempt, Run
from .settings import Settings
from .workflow import Task, Workflow, WorkflowRun

__all__ = [
    "Attempt",
    "Backoff",
    "Baton",
    "BatonError",
    "ChildRunFailed",
    "ConfigError",
    "CronSchedule",
    "DuplicateStep",
    "JobOptions",
    "JobTimeout",
    "LeaseError",
    "LeaseLost",
    "NonDeterminism",
    "NotReplicated",
    "OutputTooLarge",
    "PermanentFailure",
    "QueueFull",
    "RedisUnavailable",
    "Retry",
    "Run",
    "RunAlreadyFinished",
    "RunAlreadyReplayed",
    "RunContext",
    "RunError",
    "RunExists",
    "RunNotFinished",
    "RunNotFound",
    "RunStatusConflict",
    "Settings",
    "StepError",
    "SubmissionError",
    "Task",
    "UnknownJob",
    "UnknownParent",
    "ValueTooLarge",
    "WaitTimeout",
    "Workflow",
    "WorkflowRun",
]

__version__ = "0.1.0"
