"""The accepted range of every numeric submission option, defined once.

Every path that submits a run (stream entries, ``app.trigger``/``trigger_batch``,
the HTTP API, child runs, cron) ends in :func:`runtime.submission.build_spec`,
which checks each numeric value against :data:`RANGES` with :func:`check`.
The bounds are chosen so that whatever passes can be stored and shown again:

- every duration is at most :data:`MAX_DURATION_S` (10 years), so a due time,
  an expiry or a key's PX stays an exact integer in Lua (doubles, 2^53) and in
  Redis (PEXPIRE limits, sorted-set scores), and renders as a date;
- durations that become a Redis expiry are at least 1 ms (``PX 0`` is an error);
- ``run_at`` is epoch ms no later than the end of year 9999 (what a date renders);
- integers are small enough for orjson and Lua to carry exactly.

Stream entries carry text: :func:`parse` turns a field's text into a number
(strict ASCII syntax, bounded length) and range-checks it in one step, so no
value is converted outside the code that rejects it.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from .errors import SubmissionError

__all__ = [
    "LAST_RENDERABLE_MS", "MAX_DURATION_S", "RANGES", "RANGE_KEYWORD", "Range", "check", "json_schema", "parse",
    "ranges_markdown", "shown", "to_ms",
]

#: Longest delay, TTL, timeout or window: 10 years, in seconds.
MAX_DURATION_S = 10 * 365 * 86_400
#: The last instant a run's times may hold: 9999-12-31T23:59:59Z, in epoch ms.
LAST_RENDERABLE_MS = 253_402_300_799_000

_INT_TEXT = re.compile(r"[+-]?[0-9]{1,20}")
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
#: Longest numeric text a stream field may hold (anything longer is rejected unread).
_MAX_TEXT = 40


class Range(NamedTuple):
    """The accepted values of one numeric option: ``low <= value <= high``."""

    field: str
    #: "integer", "seconds", "milliseconds" or "epoch ms" (integers except seconds)
    unit: str
    low: float
    high: float
    #: what the option means, for the README table
    meaning: str

    @property
    def integral(self) -> bool:
        """Whether only integers are accepted."""
        return self.unit != "seconds"

    def describe(self) -> str:
        """The range in words, as error messages and the README show it."""
        kind = "an integer" if self.unit == "integer" else (
            f"an integer number of {self.unit}" if self.integral else "a number of seconds")
        return f"{kind} within [{_num(self.low)}, {_num(self.high)}]"


RANGES: dict[str, Range] = {r.field: r for r in (
    Range("priority", "integer", -1000, 1000, "higher runs first"),
    Range("fairness_weight", "integer", 1, 1000, "turns per fairness round of the run's concurrency key"),
    Range("max_attempts", "integer", 1, 1000, "attempts before the run is dead-lettered"),
    Range("delay", "seconds", 0, MAX_DURATION_S, "start no earlier than this long from now"),
    Range("delay_ms", "milliseconds", 0, MAX_DURATION_S * 1000, "the same, in milliseconds (stream only)"),
    Range("run_at", "epoch ms", 0, LAST_RENDERABLE_MS, "start no earlier than this time (up to year 9999)"),
    Range("timeout", "seconds", 0.001, MAX_DURATION_S, "handler time limit per attempt"),
    Range("ttl", "seconds", 0.001, MAX_DURATION_S, "time a run may wait to start before it ends expired"),
    Range("idempotency_ttl", "seconds", 0.001, MAX_DURATION_S, "how long the idempotency key is remembered"),
    Range("debounce_window", "seconds", 0.001, MAX_DURATION_S, "debounce window (`debounce['window']` in Python)"),
    Range("debounce_max", "seconds", 0, MAX_DURATION_S,
          "longest debounce delay after the first trigger, 0 = none (`debounce['max_delay']`)"),
    # (an hour at most: a longer preference is a requirement, node_labels)
    Range("prefer_wait", "seconds", 0, 3600, "how long a run with `prefer_labels` waits for such a node"),
)}


def shown(value: object, limit: int = 40) -> str:
    """A value for an error message: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check(name: str, value: object) -> int | float:
    """``value`` if it is a number within the range of option ``name``; else SubmissionError naming it."""
    r = RANGES[name]
    if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and not r.integral):
        if (not isinstance(value, float) or math.isfinite(value)) and r.low <= value <= r.high:
            return value
    raise SubmissionError(f"bad_{name}", f"{name} must be {r.describe()}, got {shown(value)}")


def parse(name: str, raw: str) -> int | float:
    """The number a stream field's text holds, range-checked (SubmissionError names the field)."""
    r = RANGES[name]
    pattern = _INT_TEXT if r.integral else _NUMBER_TEXT
    text = raw.strip()
    if len(text) > _MAX_TEXT or not pattern.fullmatch(text):
        raise SubmissionError(f"bad_{name}", f"field {name!r} must be {r.describe()}, got {shown(raw)}")
    number: int | float = int(text) if r.integral else float(text)
    return check(name, number)


#: the schema keyword (an OpenAPI extension) naming the option whose range a value's schema is: the
#: HTTP API rejects a value its schema refuses with :func:`check`'s error, as every other door does
RANGE_KEYWORD = "x-baton-range"


def json_schema(name: str) -> dict[str, object]:
    """The JSON Schema of option ``name`` (for the HTTP API's OpenAPI document)."""
    r = RANGES[name]
    return {"type": "integer" if r.integral else "number", "minimum": r.low, "maximum": r.high, RANGE_KEYWORD: name}


def to_ms(seconds: int | float) -> int:
    """Seconds (already range-checked) as whole milliseconds."""
    return round(seconds * 1000)


def ranges_markdown() -> str:
    """The README's table of numeric ranges, generated from :data:`RANGES`."""
    rows = ["| field | unit | min | max | meaning |", "|---|---|---|---|---|"]
    for r in RANGES.values():
        rows.append(f"| `{r.field}` | {r.unit} | {_num(r.low)} | {_num(r.high)} | {r.meaning} |")
    return "\n".join(rows)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
