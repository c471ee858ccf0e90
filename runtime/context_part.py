"""What a part of :class:`runtime.context.RunContext` written as a mixin may use of the context
(ContextPart), as runtime/app_part.py is for the app's mixins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from .errors import InvalidDuration

if TYPE_CHECKING:
    from .app import Baton
    from .attempt_ends import Endings

__all__ = ["MAX_WAIT_S", "ContextPart"]

#: the longest durable wait: about a century (a deadline stays far below the waiting set's "none", 1e15 ms)
MAX_WAIT_S = 100 * 365 * 86_400

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

    def deadline_after(self, seconds: float, what: str) -> int:
        """The time in epoch ms ``seconds`` from now, for a durable wait (``what``: "sleep", "timeout"): 0 or
        less is now. InvalidDuration for a value that is not a finite number of at most MAX_WAIT_S seconds."""
        number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
        if not number or not -MAX_WAIT_S <= seconds <= MAX_WAIT_S:
            raise InvalidDuration(f"{what} must be a number of seconds of at most {MAX_WAIT_S:,} (about a century), "
                                  f"not {seconds!r}")
        return self.now_ms() + max(int(seconds * 1000), 0)

    @property
    def replaying(self) -> bool:
        """Whether the handler re-runs code an earlier attempt ran (RunContext.replaying)."""
        raise NotImplementedError

    async def _on_lease(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        raise NotImplementedError
