"""What a part of :class:`runtime.context.RunContext` written as a mixin may use of the context
(ContextPart), as runtime/app_part.py is for the app's mixins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .app import Baton
    from .attempt_ends import Endings

__all__ = ["ContextPart"]

T = TypeVar("T")


class ContextPart:
    """The context's app, run id, clock and fenced calls, as its mixins see them (RunContext
    provides them)."""

    _app: Baton
    run_id: str
    endings: Endings

    def now_ms(self) -> int:
        """The current time in epoch ms (the context's clock)."""
        raise NotImplementedError

    @property
    def replaying(self) -> bool:
        """Whether the handler re-runs code an earlier attempt ran (RunContext.replaying)."""
        raise NotImplementedError

    async def _on_lease(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        raise NotImplementedError
