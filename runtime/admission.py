"""Admission control: ``max_queued`` caps the runs of a job or a queue admitted and not yet started.

``runs_create`` decides inside Lua (includes/admission.lua), so the cap is exact
under any number of concurrent producers: a run past it is not created and the
script answers code -11 with the scope, which :func:`rejection` turns into
:class:`~runtime.errors.QueueFull` (HTTP 429 ``queue_full``; a stream entry goes
to the rejected stream with reason ``queue_full``).

A job's cap comes from the code (``@app.job(max_queued=N)``) or a runtime
override (``Baton.set_max_queued(job=...)``, which wins until cleared); a
queue's only from runtime (``Baton.set_max_queued(queue=...)``, ``PATCH
/v1/queues/{queue}``, ``baton queue-limit``). Both are stored in every
partition and counted per partition: a job with a cap in the code routes all
its runs to one partition, so its cap is global; a queue's runs (and those of a
job capped only at runtime) spread over partitions, each holding up to the cap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .codec import text
from .errors import QueueFull, StatusCode, SubmissionError, UnknownParent

if TYPE_CHECKING:
    from .app import Baton
    from .jobs import Job
    from .keys import Partition

__all__ = ["CODE_QUEUE_FULL", "CODE_UNKNOWN_PARENT", "MAX_QUEUED", "publish_job_caps", "read_max_queued", "rejection",
           "set_max_queued"]

#: the largest max_queued an operator may set
MAX_QUEUED = 1_000_000
#: runs_create's code for a run whose depends_on names a missing run (the id slot names it)
CODE_UNKNOWN_PARENT = int(StatusCode.UNKNOWN_PARENT)
#: runs_create's code for a run over a cap (the id slot is "j:<job>=<cap>" or "q:<queue>=<cap>")
CODE_QUEUE_FULL = int(StatusCode.QUEUE_FULL)


def rejection(code: int, detail: str) -> SubmissionError | None:
    """The typed error of a runs_create code (None for a run that was created or found)."""
    if code == CODE_UNKNOWN_PARENT:
        return UnknownParent(detail)
    if code == CODE_QUEUE_FULL:
        scope, _, rest = detail.partition(":")
        name, _, cap = rest.rpartition("=")
        return QueueFull("job" if scope == "j" else "queue", name, int(cap))
    return None


def _field(job: str | None, queue: str | None, override: bool = True) -> str:
    if (job is None) == (queue is None):
        raise SubmissionError("bad_limits", "name exactly one of job and queue")
    return (("jo:" if override else "j:") + job) if job is not None else "q:" + str(queue)


def _check(value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUEUED):
        raise SubmissionError("bad_limits", f"max_queued must be an integer between 1 and {MAX_QUEUED}, or null")


async def set_max_queued(app: Baton, value: int | None, *, job: str | None = None, queue: str | None = None) -> None:
    """Set (or, with None, clear) the runtime cap of one job or queue in every partition.

    A job's runtime cap overrides the code's until cleared. Runs admitted while no
    cap was set are not counted against one set later.
    """
    _check(value)
    field = _field(job, queue)
    for p in app.keys.partitions:
        if value is None:
            await app.redis.hdel(p.max_queued, field)
        else:
            await app.redis.hset(p.max_queued, field, value)


async def read_max_queued(app: Baton, *, job: str | None = None, queue: str | None = None) -> dict[str, Any]:
    """The cap in force (None = none) and the runs it counts now, summed over partitions."""
    field = _field(job, queue)
    scope = field if queue is not None else f"j:{job}"
    pipe = app.redis.pipeline(transaction=False)
    p0 = app.keys.partitions[0]
    pipe.hmget(p0.max_queued, [field, _field(job, queue, override=False)] if job is not None else [field])
    for p in app.keys.partitions:
        pipe.scard(p.admitted(scope))
    caps, *counts = await pipe.execute()
    cap = next((int(text(c)) for c in caps if c is not None), None)
    return {"max_queued": cap, "admitted": sum(int(c) for c in counts)}


async def publish_job_caps(app: Baton, jobs: list[Job], p: Partition) -> None:
    """Write the code's max_queued of each job to partition ``p`` (removing caps the code dropped)."""
    pipe = app.redis.pipeline(transaction=False)
    for j in jobs:
        if j.options.max_queued:
            pipe.hset(p.max_queued, f"j:{j.name}", j.options.max_queued)
        else:
            pipe.hdel(p.max_queued, f"j:{j.name}")
    await pipe.execute()
