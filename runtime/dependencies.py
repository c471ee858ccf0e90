"""Declarative dependencies: a run created with ``depends_on`` starts only once its parents finished.

The Python side validates the parents and routes the dependent run into their
partition; ``runs_create`` (through ``includes/deps.lua``) checks that every
parent exists, counts the parents already finished at once and parks the run
in status ``waiting`` (wait kind ``parents``) for the others. When a parent
reaches a terminal status, the same Lua call that finishes it (``make_terminal``)
settles each edge by its policy, copies a completed parent's output to the
dependent, and queues the dependent once no parent is pending: no wake-up can be
lost and none can happen twice, because both sides change in one script.

Partitions: a script touches one partition, so a dependent lives in its
parents' partition and all its parents must share one. Runs of one workflow are
all placed in one partition (runtime/workflow.py); ``depends_on`` naming parents
of two partitions is rejected (reason ``depends_on_partitions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from .codec import text
from .errors import SubmissionError
from .ids import NAME_RE, RUN_ID_RE
from .keys import Keys
from .ranges import shown
from .settings import Settings
from .statuses import TERMINAL

if TYPE_CHECKING:
    from .app import Baton

__all__ = ["MAX_PARENTS", "POLICIES", "depends_spec", "edge_satisfied", "edges_of", "parent_outputs", "parents_routing"]

#: most parents one run may name
MAX_PARENTS = 100
#: what a failed parent (any terminal status but completed) does to its dependent:
#: fail it (the default, like BullMQ's failParentOnFailure), ignore the failure
#: (the dependent runs; the parent has no output), or cancel the dependent
POLICIES = ("fail", "ignore", "cancel")


def _edge(item: Any) -> tuple[str, str, str]:
    """One parent as (run id, policy, name): a run id, or {"id", "on_failure", "name"}."""
    run_id: Any
    policy: Any
    name: Any
    if isinstance(item, str):
        run_id, policy, name = item, "fail", item
    elif isinstance(item, Mapping):
        unknown = sorted(str(k) for k in item if k not in ("id", "on_failure", "name"))
        if unknown:
            raise SubmissionError("bad_depends_on", f"unknown parent field(s): {shown(', '.join(unknown), 100)}")
        run_id, policy = item.get("id"), item.get("on_failure", "fail")
        name = item.get("name", run_id)
    else:
        raise SubmissionError("bad_depends_on", f"a parent is a run id or an object with an id, got {shown(item)}")
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise SubmissionError("bad_depends_on", f"parent id {shown(run_id)} is not a valid run id")
    if policy not in POLICIES:
        raise SubmissionError("bad_depends_on", f"on_failure must be one of {', '.join(POLICIES)}, got {shown(policy)}")
    if not isinstance(name, str) or not (name == run_id or NAME_RE.match(name)):
        raise SubmissionError("bad_depends_on", f"parent name {shown(name)} must match {NAME_RE.pattern}")
    return run_id, str(policy), name


def depends_spec(settings: Settings, keys: Keys, depends_on: Any) -> tuple[str, str | None]:
    """The ``depends_json`` field of a RunSpec and the routing key of the parents' partition.

    ``("", None)`` without parents. The JSON carries the retention settings too:
    a dependent whose parent already failed ends at once inside runs_create,
    which has no other way to know them.
    """
    if depends_on is None or (isinstance(depends_on, list | tuple) and not depends_on):
        return "", None
    if not isinstance(depends_on, list | tuple):
        raise SubmissionError("bad_depends_on", "depends_on must be an array of run ids or parent objects")
    if len(depends_on) > MAX_PARENTS:
        raise SubmissionError("bad_depends_on", f"at most {MAX_PARENTS} parents")
    edges = [_edge(item) for item in depends_on]
    ids = [e[0] for e in edges]
    if len(set(ids)) != len(ids) or len({e[2] for e in edges}) != len(edges):
        raise SubmissionError("bad_depends_on", "each parent (and each parent name) may appear once")
    partitions = {keys.partition_of_run(i).index for i in ids}
    if len(partitions) > 1:
        raise SubmissionError(
            "depends_on_partitions",
            f"parents live in partitions {sorted(partitions)}: a dependent run lives in its parents' partition, so "
            "they must share one (trigger them with one routing: a workflow, or ids from the same partition)")
    body = {"on": [list(e) for e in edges], "ttl": settings.finished_ttl_s * 1000,
            "dlq": settings.dead_letter_ttl_s * 1000, "cap": settings.finished_cap}
    return orjson.dumps(body).decode(), ids[0]


def parents_routing(keys: Keys, routing: str | None, parents: str) -> str:
    """The routing key of a dependent run: its parents' partition, which a limit's own routing must match."""
    if routing is not None and keys.partition_for(routing) != keys.partition_of_run(parents):
        raise SubmissionError(
            "depends_on_partitions",
            "this job's limit or key routes its runs to another partition than the parents': with several "
            "partitions such a run cannot depend on them")
    return parents


async def parent_outputs(baton: Baton, run_id: str) -> dict[str, Any]:
    """The outputs of a run's completed parents, by parent name (the parent's id unless named).

    Copied to the dependent when each parent completes, so they outlive the
    parents' records. A parent that failed under ``on_failure="ignore"`` has no entry.
    """
    raw = await baton.redis.hgetall(baton.keys.partition_of_run(run_id).parent_outputs(run_id))
    return {text(k): orjson.loads(v) for k, v in raw.items()}


def edges_of(raw: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """A run's parents as (id, policy, name), from its record's ``depends_on`` (none: an empty list)."""
    stored = raw.get("depends_on")
    if not stored:
        return []
    return [(str(e[0]), str(e[1]), str(e[2])) for e in orjson.loads(stored)]


def edge_satisfied(status: str | None, policy: str) -> bool:
    """Whether a parent in ``status`` no longer holds its dependent back (None: its record expired)."""
    return status == "completed" or (policy == "ignore" and status in {str(s) for s in TERMINAL})
