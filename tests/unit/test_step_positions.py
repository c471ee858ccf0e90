"""Step positions (runtime/step_positions.py): sequential code keeps the numbers it always had, each task
the handler creates numbers its steps from where it was created, and runs recorded before keep their
one sequence."""

from __future__ import annotations

import asyncio
import contextvars
import random
from typing import Any

from runtime import Baton, Settings
from runtime.context import RunContext
from runtime.run_logs import current_run
from runtime.run_tasks import adopting_tasks
from runtime.scripts import Claimed
from runtime.step_positions import Branch, Position, described, legacy_history, position_tag


def context(steps: dict[str, dict[str, Any]] | None = None) -> RunContext:
    """A run context of a node's kind (made in the running task, as the executor makes it), its run current."""
    claimed = Claimed("r1", "n/1", 2, "job", b"null", 1000, 0, 0, 0, step_count=1 if steps else 0)
    ctx = RunContext(Baton(Settings()), claimed, steps)
    current_run.set(ctx)
    return ctx


async def test_the_handlers_own_steps_keep_their_plain_numbers() -> None:
    # (names like __sleep#3 and child ids like <run>.3 recorded before branches had sequences still match)
    own = Branch(id(object()), ())
    taken = [own.current().take() for _ in range(3)]
    assert taken == [(0,), (1,), (2,)]
    assert [position_tag(p) for p in taken] == ["0", "1", "2"]
    assert described((2,)) == "#2"


async def test_branches_are_numbered_where_they_are_created_whatever_order_they_run_in() -> None:
    # Given a node's loop (its task factory makes a run's tasks branches) and a handler that gathers
    # branches which reach their steps after random awaits, twice
    uninstall = adopting_tasks(asyncio.get_running_loop())
    try:
        async def positions() -> dict[str, Any]:
            ctx = context()
            seen: dict[str, Any] = {}

            async def leaf(name: str) -> None:
                await asyncio.sleep(random.random() / 100)
                seen[name] = [ctx._reserve(), ctx._reserve()]

            async def branch(name: str) -> None:
                await asyncio.sleep(random.random() / 100)
                seen[name] = ctx._reserve()
                await asyncio.gather(leaf(f"{name}.a"), leaf(f"{name}.b"))

            seen["before"] = ctx._reserve()
            await asyncio.gather(branch("x"), branch("y"))
            seen["after"] = ctx._reserve()
            return seen

        runs = [await positions() for _ in range(5)]
    finally:
        uninstall()
    # Then every step had the same position on every run, the handler's own went on as if no branch
    # were there, and no two steps shared one
    assert all(r == runs[0] for r in runs)
    first = runs[0]
    assert first["before"] == (0,) and first["after"] == (1,)
    everything = [first["x"], first["y"], *first["x.a"], *first["x.b"], *first["y.a"], *first["y.b"]]
    assert len(set(everything)) == len(everything)
    assert len({position_tag(p) for p in everything}) == len(everything)


async def test_tasks_a_steps_function_creates_are_not_branches() -> None:
    # (a replay does not run a completed step's function: its tasks must not move later branches)
    uninstall = adopting_tasks(asyncio.get_running_loop())
    try:
        async def after_a_step(inside: int) -> Position:
            ctx = context()

            async def function() -> None:
                await asyncio.gather(*(asyncio.sleep(0) for _ in range(inside)))

            from runtime.step_positions import in_step
            with in_step():
                await function()

            async def branch() -> Position:
                return ctx._reserve()

            return await asyncio.create_task(branch())

        assert await after_a_step(0) == await after_a_step(3)
    finally:
        uninstall()


async def test_a_task_that_is_not_a_branch_of_the_run_uses_the_handlers_own_sequence() -> None:
    # (a batch job's handler call runs in a context of its own)
    own = Branch(id(object()), ())

    async def sequence() -> Branch:
        return own.current()

    alone = asyncio.get_running_loop().create_task(sequence(), context=contextvars.Context())
    assert await alone is own


async def test_a_run_recorded_before_branches_keeps_its_one_sequence() -> None:
    # Given a run recorded by a Baton whose steps had one sequence: two gathered named steps took
    # positions 1 and 2, so the sleep after them was __sleep#3
    def rec(name: str, index: int) -> dict[str, Any]:
        return {"name": name, "index": index, "status": "completed", "output": None}

    steps = {r["name"]: r for r in (rec("first", 0), rec("x", 1), rec("y", 2), rec("__sleep#3", 3))}
    assert legacy_history(steps)
    uninstall = adopting_tasks(asyncio.get_running_loop())
    try:
        ctx = context(steps)
        ctx._begin("first")

        async def branch(name: str) -> None:
            ctx._begin(name)

        await asyncio.gather(branch("x"), branch("y"))
        # When the handler reaches the sleep again
        name, index, tag, record = ctx._begin_auto("__sleep")
    finally:
        uninstall()
    # Then it finds the sleep it recorded, under its name
    assert (name, index, tag) == ("__sleep#3", 3, "3") and record is not None
    # (records that Lua completed, which have no position, do not make a run look old)
    assert not legacy_history({"__wait_signal#0": rec("__wait_signal#0", 0), "a": {**rec("a", 1), "at": [1]}})


async def test_a_task_as_completed_makes_of_a_coroutine_cannot_begin_a_step() -> None:
    # (as_completed makes its tasks from a set of coroutines, in no fixed order: their steps could not be
    # found again on a replay, so the first one is refused at once, saying what to do instead)
    from runtime.errors import NonDeterminism

    uninstall = adopting_tasks(asyncio.get_running_loop())
    try:
        ctx = context()

        async def branch() -> Position:
            return ctx._reserve()

        refused = []
        for done in asyncio.as_completed([branch(), branch()]):
            try:
                await done
            except NonDeterminism as exc:
                refused.append(str(exc))
        assert len(refused) == 2 and "asyncio.as_completed" in refused[0] and "create the tasks" in refused[0]
        # while tasks made first (in a comprehension: its function names them on every Python), then given
        # to it, are branches like any other (the two refused took the function's first two)
        made = [asyncio.create_task(branch()) for _ in range(2)]
        assert sorted([await done for done in asyncio.as_completed(made)]) == [
            ("test_a_task_as_completed_makes_of_a_coroutine_cannot_begin_a_step#2", 0),
            ("test_a_task_as_completed_makes_of_a_coroutine_cannot_begin_a_step#3", 0)]
    finally:
        uninstall()


async def test_a_branch_replays_until_its_own_furthest_recorded_step() -> None:
    # Given a run whose branch x recorded two steps and branch y one (y's second step is new code)
    def rec(name: str, index: int, at: list[Any]) -> dict[str, Any]:
        return {"name": name, "index": index, "status": "completed", "output": None, "at": at}

    steps = {r["name"]: r for r in (rec("x0", 0, ["h#0", 0]), rec("y0", 1, ["h#1", 0]), rec("x1", 2, ["h#0", 1]))}
    ctx = context(steps)
    from runtime.step_positions import _CURRENT

    def in_branch(anchor: str) -> Branch:
        branch = Branch(id(ctx), (anchor,))
        _CURRENT.set(branch)
        return branch

    async def replaying_after(anchor: str, steps_begun: int) -> bool:
        branch = in_branch(anchor)
        branch.taken = steps_begun
        return ctx.replaying

    # Then y runs new code once past its one recorded step, while x still replays there
    assert await asyncio.create_task(replaying_after("h#1", 0)) is True
    assert await asyncio.create_task(replaying_after("h#1", 1)) is False
    assert await asyncio.create_task(replaying_after("h#0", 1)) is True
    assert await asyncio.create_task(replaying_after("h#0", 2)) is False
