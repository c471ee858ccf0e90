"""The outcome an attempt records: completed with its result, or ended (failed, canceled, timed out,
released) with its error, cut to what a record holds. The executor decides which; these build them."""

from __future__ import annotations

import traceback
from typing import Any

import orjson

from .limits import fit_error, output_json
from .scripts import Claimed, Outcome
from .settings import Settings

__all__ = ["completed", "ended", "exception_text"]


def completed(settings: Settings, c: Claimed, result: Any) -> Outcome:
    """The outcome of a handler that returned ``result``: completed; a result that cannot be stored raises
    (ValueNotStorable, OutputTooLarge: PermanentFailures) to the caller, which fails the run at once."""
    return Outcome(c.run_id, c.token, "completed", output_json=output_json(settings, result))


def ended(settings: Settings, c: Claimed, status: str, exc: BaseException | None,
          permanent: bool = False) -> Outcome:
    """The outcome ``status`` of attempt ``c``, with ``exc`` as its error (message and stack cut to a
    quarter of max_record_bytes each); a cancel without one says so."""
    error = None
    if exc is not None:
        message, stack = fit_error(exception_text(exc), "".join(traceback.format_exception(exc)), settings)
        error = {"message": message, "type": type(exc).__name__, "stack": stack}
    elif status == "canceled":
        error = {"message": "canceled while executing", "type": "Canceled"}
    return Outcome(c.run_id, c.token, status, error_json=orjson.dumps(error).decode() if error else "",
                   permanent=permanent)


def exception_text(exc: BaseException) -> str:
    """What an error says (its type's name when it says nothing). A handler's exception whose ``__str__``
    raises says so, instead of that second error taking its place in the record and the log."""
    try:
        return str(exc) or type(exc).__name__
    except Exception as broken:  # noqa: BLE001 - any error of a handler's own __str__
        return f"<{type(exc).__name__}: its str() raised {type(broken).__name__}>"
