"""Baton: durable background jobs for Python on Redis.

The user-facing API: define jobs on a :class:`Baton` app, trigger runs, inspect them.
"""

from .app import Baton
from .batching import Batch
from .context import RunContext
from .cron import CronSchedule
from .errors import (
    BatonError,
    ChildRunFailed,
    ConfigError,
    DuplicateStep,
    InvalidDuration,
    JobTimeout,
    LeaseError,
    LeaseLost,
    NonDeterminism,
    NotReplicated,
    OutageOutlastedLease,
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
    SignalBufferFull,
    StepError,
    SubmissionError,
    TokenAlreadyCompleted,
    TokenError,
    TokenExpired,
    TokenNotFound,
    TokenSignatureInvalid,
    UnknownJob,
    UnknownParent,
    ValueNotStorable,
    ValueTooLarge,
    WaitTimeout,
    WebhookError,
)
from .jobs import Backoff, JobOptions
from .records import Attempt, Run
from .settings import Settings
from .tokens import WaitToken
from .workflow import Task, Workflow, WorkflowRun

__all__ = [
    "Attempt",
    "Backoff",
    "Batch",
    "Baton",
    "BatonError",
    "ChildRunFailed",
    "ConfigError",
    "CronSchedule",
    "DuplicateStep",
    "InvalidDuration",
    "JobOptions",
    "JobTimeout",
    "LeaseError",
    "LeaseLost",
    "NonDeterminism",
    "NotReplicated",
    "OutageOutlastedLease",
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
    "SignalBufferFull",
    "StepError",
    "SubmissionError",
    "Task",
    "TokenAlreadyCompleted",
    "TokenError",
    "TokenExpired",
    "TokenNotFound",
    "TokenSignatureInvalid",
    "UnknownJob",
    "UnknownParent",
    "ValueNotStorable",
    "ValueTooLarge",
    "WaitTimeout",
    "WaitToken",
    "WebhookError",
    "Workflow",
    "WorkflowRun",
]

__version__ = "0.1.0"
