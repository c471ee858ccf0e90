"""How a handler's attempt ends other than by returning or raising an error: a durable wait
(``Suspend``) or a continuation (``ContinueAsNew``). Both are BaseExceptions, so a handler's
``except Exception`` lets them pass."""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["ContinueAsNew", "Endings", "Suspend", "unwrapped"]


class Suspend(BaseException):
    """Ends the attempt into a durable wait. A BaseException so ``except Exception`` in handlers lets it pass."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec.get("kind", "wait"))
        self.spec = spec


class ContinueAsNew(BaseException):
    """Ends the run and starts a new one with the given input (see RunContext.continue_as_new)."""

    def __init__(self, payload: Any) -> None:
        super().__init__("continue_as_new")
        self.payload = payload


Ending = TypeVar("Ending", Suspend, ContinueAsNew)


class Endings:
    """The first way of ending a run's attempt that its context raised. A handler that catches it (a bare
    ``except:`` or ``except BaseException``) and goes on must not complete the run past a wait it began
    (its wait step would stay ``waiting`` for good): the executor ends the attempt with it all the same."""

    __slots__ = ("first",)

    def __init__(self) -> None:
        self.first: Suspend | ContinueAsNew | None = None

    def note(self, ending: Ending) -> Ending:
        """Remember ``ending`` (unless an earlier one is remembered) and return it, to be raised."""
        if self.first is None:
            self.first = ending
        return ending


def unwrapped(group: BaseExceptionGroup[BaseException], permanent: type[BaseException]) -> BaseException:
    """What a handler that raised ``group`` (an ``asyncio.TaskGroup`` gathers its tasks' errors in one) ends
    its attempt with: the first wait or continuation one of its tasks began (the attempt ends in it, as
    if the handler had raised it), else the first ``permanent`` failure (no retry would do better), else
    the group itself."""
    for kinds in ((Suspend, ContinueAsNew), (permanent,)):
        found: BaseException | None = group.subgroup(kinds)
        while isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        if found is not None:
            return found
    return group
