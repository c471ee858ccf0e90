"""Step positions (runtime/step_positions.py): sequential code keeps the numbers it always had, and each
branch numbers its own steps from an anchor that does not depend on the order branches run in."""

from __future__ import annotations

import asyncio
import contextvars

from runtime.step_positions import Branch, Position, described, position_tag


async def test_the_handlers_own_steps_keep_their_plain_numbers() -> None:
    # (names like __sleep#3 and child ids like <run>.3 recorded before branches had positions still match)
    own = Branch.handlers_own(object())
    taken = [own.current().take(None), own.current().take("named"), own.current().take(None)]
    assert taken == [(0,), (1,), (2,)]
    assert [position_tag(p) for p in taken] == ["0", "1", "2"]
    assert described((2,)) == "#2"


async def test_branches_are_anchored_by_their_first_steps_name_whatever_the_order() -> None:
    async def positions(first: str) -> dict[str, list[Position]]:
        own = Branch.handlers_own(object())
        seen: dict[str, list[Position]] = {}

        async def branch(name: str) -> None:
            if name != first:
                await asyncio.sleep(0.01)
            here = own.current()
            seen[name] = [here.take(f"{name}-a"), here.take(None), here.take(f"{name}-c")]

        await asyncio.gather(branch("x"), branch("y"))
        seen["after"] = [own.current().take(None)]
        return seen

    one, other = await positions("x"), await positions("y")
    assert one == other
    assert one["x"] == [("x-a",), ("x-a", 1), ("x-a", 2)]
    # (the handler's own sequence counted one position per branch, so what follows it stays put)
    assert one["after"] == [(2,)]
    assert position_tag(one["x"][1]) != position_tag(one["y"][1])
    assert position_tag(one["x"][1]).startswith("n")


async def test_a_branch_that_begins_with_an_unnamed_step_takes_the_next_position() -> None:
    own = Branch.handlers_own(object())
    own.current().take("before")

    async def branch() -> list[Position]:
        here = own.current()
        return [here.peek(), here.take(None), here.take(None)]

    assert await asyncio.gather(branch(), branch()) == [[(1,), (1,), (1, 1)], [(2,), (2,), (2, 1)]]
    assert position_tag((2, 1)) == "2-1"


async def test_a_task_the_handlers_context_did_not_start_uses_the_handlers_own_sequence() -> None:
    # (a batch job's handler call runs in a context of its own)
    own = Branch.handlers_own(object())

    async def sequence() -> Branch:
        return own.current()

    alone = asyncio.get_running_loop().create_task(sequence(), context=contextvars.Context())
    assert await alone is own
    # while a task its context did start is a branch of its own
    assert await asyncio.get_running_loop().create_task(sequence()) is not own
