"""Baton's one exception hierarchy, and the mapping of Lua status codes to it."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "BatonError",
    "ChildRunFailed",
    "ConfigError",
    "DuplicateStep",
    "EventLoopBlocked",
    "HandlerCancelled",
    "InvalidDuration",
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
    "RunAlreadyFinished",
    "RunAlreadyReplayed",
    "RunError",
    "RunExists",
    "RunNotFinished",
    "RunNotFound",
    "RunStatusConflict",
    "SignalBufferFull",
    "StatusCode",
    "StepError",
    "SubmissionError",
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
    "WebhookError",
    "raise_for_status",
]


class BatonError(Exception):
    """Base class of every error Baton raises on purpose."""


class ConfigError(BatonError):
    """Raised when a setting, a job option or a CLI flag is invalid."""


class RedisUnavailable(BatonError):
    """Raised when Redis cannot be reached or the embedded server cannot start."""


class NotReplicated(RedisUnavailable):
    """A write reached fewer replicas than ``durable_replicas`` within ``durable_timeout_ms``.

    It is on the master and may or may not survive a failover, so it was not
    acknowledged: retry it (run creation is idempotent on the run id, the entry id
    and the idempotency key). ``reply`` is what the write answered on the master (None for a
    probe): what a caller must undo when the write took something (a claim's leases).
    """

    def __init__(self, message: str, reply: object = None) -> None:
        super().__init__(message)
        self.reply = reply


class SubmissionError(BatonError):
    """Raised when a submission (stream entry, trigger call, API body) is invalid.

    ``reason`` is a short machine-readable code (``bad_json``, ``unknown_job`` ...)
    written to the rejected-entries stream; the message explains it to a person.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnknownJob(SubmissionError):
    """Raised when a submission names a job no worker has registered."""

    def __init__(self, job: str) -> None:
        super().__init__("unknown_job", f"no job named {job!r} is registered")
        self.job = job


class WebhookError(BatonError):
    """Raised when a webhook registration or a delivery action is invalid or names nothing.

    ``code`` is a short machine-readable reason (``bad_url``, ``unknown_event``, ``not_found`` ...); the
    HTTP API answers it as 400 (404 for ``not_found``).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownParent(SubmissionError):
    """Raised when a run's ``depends_on`` names a run that does not exist (never did, or expired)."""

    def __init__(self, parent: str) -> None:
        super().__init__("unknown_parent", f"depends_on names run {parent!r}, which does not exist")
        self.parent = parent


class QueueFull(SubmissionError):
    """Raised when a trigger would take a job or queue past its ``max_queued`` (admission control).

    ``scope`` is ``"job"`` or ``"queue"``, ``name`` the job's or queue's name, ``max_queued``
    the cap in force. Retry later, once runs have started."""

    def __init__(self, scope: str, name: str, max_queued: int) -> None:
        super().__init__("queue_full", f"{scope} {name!r} has {max_queued} runs queued and not started "
                                       f"(max_queued); try again later")
        self.scope, self.name, self.max_queued = scope, name, max_queued


class LeaseError(BatonError):
    """Base class of lease problems."""


class LeaseLost(LeaseError):
    """Raised when a write is fenced off because this node no longer holds the lease."""


class OutageOutlastedLease(LeaseLost):
    """Raised in a handler when Redis stayed unavailable (down, restarting, out of memory ...) until
    the run's lease may have expired: the attempt ends, and is given back without being charged."""


class RunError(BatonError):
    """Base class of errors about one run."""


class RunNotFound(RunError):
    """Raised when no run has the given id (never existed or expired by retention)."""


class RunNotFinished(RunError):
    """Raised when an operation needs a finished run (replay) and the run is still live."""


class RunAlreadyFinished(RunError):
    """Raised when an operation needs a live run (cancel) and the run has finished."""


class RunExists(RunError):
    """Raised when a new run id is already taken."""


class RunStatusConflict(RunError):
    """Raised when the run's status does not allow the operation (resume a run that is not paused ...)."""


class RunAlreadyReplayed(RunError):
    """Raised when a dead-lettered run was already replayed from the dead letter queue."""


class JobTimeout(BatonError):
    """Recorded when a handler runs past its job's timeout and is cancelled."""


class EventLoopBlocked(BatonError):
    """Recorded when a run's handler blocked the event loop past its lease (a ``time.sleep`` or a CPU loop in
    an ``async def``): the attempt failed, and is charged and retried like any other failure (the node's
    other runs were given back uncharged)."""


class HandlerCancelled(BatonError):
    """Recorded when a handler raises CancelledError though nothing cancelled its run (not a timeout,
    a cancel, a drain): the attempt failed, and is charged and retried like any other failure."""


class PermanentFailure(BatonError):
    """Raise from a handler to fail the run at once, without further retries."""


class ValueTooLarge(PermanentFailure):
    """A value a handler wrote (metadata, tags, a checkpoint, a record, a chunk ...) is over its limit.

    Permanent: another attempt would produce the same value. ``limit_name`` is the setting or
    constant that sets ``limit`` (see runtime/limits.py)."""

    def __init__(self, what: str, size: int, limit: int, limit_name: str, unit: str = "bytes") -> None:
        super().__init__(f"{what} is {size} {unit}; the limit is {limit} ({limit_name})")
        self.what, self.size, self.limit, self.limit_name = what, size, limit, limit_name


class OutputTooLarge(ValueTooLarge):
    """The handler's return value, a step's output or a ``ctx.output`` value is over ``max_output_bytes``."""


class ValueNotStorable(PermanentFailure, TypeError):
    """A value a handler returned or wrote cannot be stored as JSON (a type JSON has no form for, nesting too
    deep, NaN or Infinity, an integer beyond 64 bits: runtime/json_values.py). Permanent, as ValueTooLarge:
    another attempt would produce the same value. A TypeError too, as the encoder's own error is."""


class InvalidDuration(PermanentFailure, ValueError):
    """A durable wait's length (``ctx.sleep``, a wait's timeout) that is not a number of seconds Baton can
    wait: NaN, infinite, or past MAX_WAIT_S. Permanent: another attempt would ask for the same wait."""


class Retry(BatonError):
    """Raise from a handler to ask for another attempt (counts against max attempts)."""


class StepError(RunError):
    """Base class of misuse of durable steps."""


class DuplicateStep(StepError, PermanentFailure):
    """Raised when a run uses the same step name twice (step names are unique per run). Permanent: every
    attempt would reach the same name twice."""


class NonDeterminism(StepError, PermanentFailure):
    """Raised when a replayed handler reaches a step that does not match the recorded history."""


class WaitTimeout(PermanentFailure):
    """Raised in a handler whose durable wait (event, signal, token) passed its timeout. Uncaught, it fails
    the run without a retry: a retry replays the wait's recorded timeout and would raise it again."""


class ChildRunFailed(PermanentFailure):
    """Raised by trigger_and_wait when a child run did not complete. Uncaught, it fails the parent without a
    retry: a retry replays the wait and finds the same child ended the same way."""

    def __init__(self, run_id: str, status: str, error: object) -> None:
        super().__init__(f"child run {run_id} ended {status}: {error}")
        self.run_id = run_id
        self.status = status
        self.error = error


class SignalBufferFull(RunError):
    """Raised when a run already holds ``signal_buffer_max`` signals no wait has taken; the signal is refused."""


class TokenError(BatonError):
    """Base class of errors about one waitpoint token (runtime/tokens.py)."""


class TokenNotFound(TokenError):
    """Raised when no token has the given id (never created, or gone after its retention)."""


class TokenAlreadyCompleted(TokenError):
    """Raised when a token is completed or expired after it was completed: a token settles once."""


class TokenExpired(TokenError):
    """Raised when a token is completed or expired after its timeout passed or it was expired."""


class TokenSignatureInvalid(TokenError):
    """Raised when a callback URL's signature does not match its token id (or callbacks are off)."""


class StatusCode(IntEnum):
    """Negative status codes returned by the Lua scripts (see each script header)."""

    LEASE_MISMATCH = -1
    NOT_FOUND = -2
    ALREADY_FINISHED = -3
    NOT_FINISHED = -4
    EXISTS = -5
    DUPLICATE_STEP = -6
    WRONG_STATUS = -7
    ALREADY_REPLAYED = -8
    SIGNAL_BUFFER_FULL = -9
    #: runs_create only (the id slot names the cause; runtime/admission.py turns them into errors)
    UNKNOWN_PARENT = -21
    QUEUE_FULL = -22


def raise_for_status(code: int, run_id: str) -> None:
    """Turn a negative script status code into the matching typed error."""
    if code >= 0:
        return
    status = StatusCode(code)
    if status is StatusCode.LEASE_MISMATCH:
        raise LeaseLost(f"run {run_id}: lease token no longer matches; write rejected")
    if status is StatusCode.NOT_FOUND:
        raise RunNotFound(f"run {run_id} not found")
    if status is StatusCode.ALREADY_FINISHED:
        raise RunAlreadyFinished(f"run {run_id} has already finished")
    if status is StatusCode.NOT_FINISHED:
        raise RunNotFinished(f"run {run_id} has not finished yet")
    if status is StatusCode.DUPLICATE_STEP:
        raise DuplicateStep(f"run {run_id}: a completed step with this name already exists")
    if status is StatusCode.WRONG_STATUS:
        raise RunStatusConflict(f"run {run_id}: its status does not allow this operation")
    if status is StatusCode.ALREADY_REPLAYED:
        raise RunAlreadyReplayed(f"run {run_id} was already replayed from the dead letter queue")
    if status is StatusCode.SIGNAL_BUFFER_FULL:
        raise SignalBufferFull(f"run {run_id} already holds as many signals as signal_buffer_max; signal refused")
    raise RunExists(f"run {run_id} already exists")
