"""The outcome an attempt records: completed with its result, or ended (failed, canceled, timed out,
released) with its error, cut to what a record holds. The executor decides which; these build them."""

from __future__ import annotations

import traceback
from typing import Any

import orjson

from .limits import fit_error, output_json
from .scripts import Claimed, Outcome
from .settings import Settings

__all__ = ["completed", "ended"]


def completed(settings: Settings, c: Claimed, result: Any) -> Outcome:
    """The outcome of a handler that returned ``result``: completed, or failed when the result cannot be
    stored (OutputTooLarge, a PermanentFailure, goes on to the caller). Only the result's own encoding is
    caught here: a TypeError the handler raised is the handler's, with its traceback."""
    try:
        output = output_json(settings, result)
    except TypeError as exc:  # (orjson's encode error, or a value nested too deep)
        return ended(settings, c, "failed", TypeError(f"handler result is not JSON-serialisable: {exc}"))
    return Outcome(c.run_id, c.token, "completed", output_json=output)


def ended(settings: Settings, c: Claimed, status: str, exc: BaseException | None,
          permanent: bool = False) -> Outcome:
    """The outcome ``status`` of attempt ``c``, with ``exc`` as its error (message and stack cut to a
    quarter of max_record_bytes each); a cancel without one says so."""
    error = None
    if exc is not None:
        message, stack = fit_error(str(exc) or type(exc).__name__, "".join(traceback.format_exception(exc)), settings)
        error = {"message": message, "type": type(exc).__name__, "stack": stack}
    elif status == "canceled":
        error = {"message": "canceled while executing", "type": "Canceled"}
    return Outcome(c.run_id, c.token, status, error_json=orjson.dumps(error).decode() if error else "",
                   permanent=permanent)
