"""How a handler's attempt ends other than by returning or raising an error: a durable wait
(``Suspend``) or a continuation (``ContinueAsNew``). Both are BaseExceptions, so a handler's
``except Exception`` lets them pass."""

from __future__ import annotations

from typing import Any

__all__ = ["ContinueAsNew", "Suspend"]


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
