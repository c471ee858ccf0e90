"""Workflows defined in code: tasks (jobs) that name their parents, triggered together as a DAG.

    wf = app.workflow("etl")
    extract = wf.task(extract_job)
    transform = wf.task(transform_job, parents=[extract])
    load = wf.task("load", parents=[transform], on_parent_failure="ignore")
    run = await app.run_workflow(wf, {"day": "2026-12-02"})
    results = await run.wait()          # task name -> finished Run

Every task becomes one run, all created in one ``runs_create`` call in one
partition (atomic: all or none exist), each with ``depends_on`` its parents
(runtime/dependencies.py): a task is queued once its parents finished and reads
their outputs with ``await ctx.parent_outputs()``, keyed by task name. Each
task gets the workflow's input unless it was given its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .dependencies import POLICIES
from .errors import ConfigError, SubmissionError
from .ids import NAME_RE, run_id_in_partition

if TYPE_CHECKING:
    from .app import Baton
    from .records import Run

__all__ = ["Task", "Workflow", "WorkflowRun"]

_UNSET: Any = object()


@dataclass(frozen=True)
class Task:
    """One node of a workflow: a job, the tasks it waits for and what their failure does to it."""

    name: str
    job: str
    parents: tuple[Task, ...] = ()
    on_parent_failure: str = "fail"
    #: the task's own input (else the workflow's)
    input: Any = _UNSET
    #: more trigger options (queue, priority, concurrency_key, max_attempts, timeout ...)
    options: Mapping[str, Any] = field(default_factory=dict)


class Workflow:
    """A named DAG of tasks; tasks are added parents first, so the order is a topological one."""

    def __init__(self, app: Baton, name: str) -> None:
        if not NAME_RE.match(name):
            raise ConfigError(f"invalid workflow name {name!r}")
        self.app = app
        self.name = name
        self.tasks: list[Task] = []

    def task(
        self, job: str | Callable[..., Any], *, parents: Sequence[Task] = (), name: str | None = None,
        on_parent_failure: str = "fail", input: Any = _UNSET, **options: Any,
    ) -> Task:
        """Add a task running ``job`` (its name or its registered handler) after ``parents``.

        ``on_parent_failure``: ``fail`` (default) fails the task when a parent does not
        complete, ``ignore`` runs it anyway, ``cancel`` cancels it.
        """
        job_name = job if isinstance(job, str) else self._job_name(job)
        task_name = name or job_name
        if not NAME_RE.match(task_name):
            raise ConfigError(f"invalid task name {task_name!r}")
        if any(t.name == task_name for t in self.tasks):
            raise ConfigError(f"workflow {self.name!r} already has a task named {task_name!r}; pass name=")
        if on_parent_failure not in POLICIES:
            raise ConfigError(f"on_parent_failure must be one of {', '.join(POLICIES)}")
        for parent in parents:
            if not any(parent is t for t in self.tasks):
                raise ConfigError(f"parent {parent.name!r} is not a task of workflow {self.name!r}")
        made = Task(task_name, job_name, tuple(parents), on_parent_failure, input, dict(options))
        self.tasks.append(made)
        return made

    def _job_name(self, handler: Callable[..., Any]) -> str:
        for j in self.app.jobs:
            if j.handler is handler:
                return str(j.name)
        raise ConfigError(f"{handler!r} is not a job of this app: pass the job's name")

    async def run(self, input: Any = None) -> WorkflowRun:
        """Create a run per task (one atomic call, one partition); see :meth:`Baton.run_workflow`."""
        if not self.tasks:
            raise ConfigError(f"workflow {self.name!r} has no tasks")
        app = self.app
        keys = app.keys
        # the first task's run takes the partition its job routes it to; every other root is
        # placed there, and dependents follow their parents
        partition: int | None = None
        ids: dict[str, str] = {}
        specs = []
        for t in self.tasks:
            item: dict[str, Any] = {**t.options, "job": t.job, "input": input if t.input is _UNSET else t.input}
            if t.parents:
                item["depends_on"] = [{"id": ids[p.name], "name": p.name, "on_failure": t.on_parent_failure}
                                      for p in t.parents]
            elif partition is not None:
                item.setdefault("id", run_id_in_partition(keys, partition))
            extra = {"workflow": self.name, "workflow_task": t.name}
            if ids:
                extra["workflow_run_id"] = next(iter(ids.values()))
            try:
                spec = await app._spec(item, extra=extra)
            except SubmissionError as exc:
                if exc.reason not in ("id_partition_mismatch", "depends_on_partitions"):
                    raise
                raise SubmissionError("workflow_partitions", (
                    f"task {t.name!r}: its job's limits route its runs to another partition than the workflow's "
                    f"first task; with several partitions a workflow's tasks must share one")) from None
            partition = keys.partition_of_run(spec.id).index
            ids[t.name] = spec.id
            specs.append(spec)
        await app.create_detailed(specs)
        return WorkflowRun(app, self.name, ids)


@dataclass(frozen=True)
class WorkflowRun:
    """The runs of one workflow run, by task name; its id is the first task's run id."""

    app: Baton
    workflow: str
    runs: dict[str, str]

    @property
    def id(self) -> str:
        """The first task's run id (every other task's record names it as workflow_run_id)."""
        return next(iter(self.runs.values()))

    async def wait(self, timeout: float = 60.0) -> dict[str, Run]:
        """Wait until every task's run finished; returns them by task name."""
        return {name: await self.app.wait_for(run_id, timeout) for name, run_id in self.runs.items()}
