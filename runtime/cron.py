"""Cron schedules: expressions (5 fields, or 6 with seconds first), policies, registry.

Fields: ``[second] minute hour day-of-month month day-of-week``; each is ``*``,
a number, a range ``a-b``, a step ``*/n`` / ``a-b/n`` / ``a/n``, or a comma list
of those. Months and weekdays accept names (JAN, MON). Day-of-week 0 and 7 are
Sunday. When both day fields are restricted, a day matching either fires (as in
Vixie cron). Times are evaluated in the schedule's IANA timezone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from .codec import digits
from .errors import ConfigError
from .ids import NAME_RE

__all__ = ["REFUSED", "CronExpression", "CronSchedule", "ScheduleRegistry"]

_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
#: a schedule state's field saying why the scheduler's last tick of it started no run (its job gone, its
#: options no longer valid, its queue full); emptied when a tick fires or the schedule is set again
REFUSED = "refused"
#: the most days each month has (February in leap years: a schedule on the 29th fires then)
_LONGEST_MONTH = dict(enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1))


def _parse_field(text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ConfigError(f"empty item in cron field {text!r}")
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            # (a step past the field's span would fire at its start only: a mistake, not a schedule)
            if not digits(step_text) or not 1 <= int(step_text) <= hi - lo + 1:
                raise ConfigError(f"bad step in cron field {text!r}: 1 to {hi - lo + 1}")
            step = int(step_text)
        if part == "*":
            start, end = lo, hi
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = hi if step > 1 else start
        if not lo <= start <= hi or not lo <= end <= hi or start > end:
            raise ConfigError(f"cron field {text!r} out of range {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not digits(text):
        raise ConfigError(f"bad cron value {text!r}")
    return int(text)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; :meth:`next_after` gives fire times."""

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse 5 or 6 fields; raises ConfigError with the reason."""
        parts = text.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ConfigError(f"cron expression {text!r} must have 5 or 6 fields")
        sec, minute, hour, dom, month, dow = parts
        weekdays = _parse_field(dow, 0, 7, _DAYS)
        if 7 in weekdays:
            weekdays = (weekdays - {7}) | {0}
        parsed = cls(
            text=text, seconds=_parse_field(sec, 0, 59), minutes=_parse_field(minute, 0, 59),
            hours=_parse_field(hour, 0, 23), days=_parse_field(dom, 1, 31), months=_parse_field(month, 1, 12, _MONTHS),
            weekdays=frozenset(weekdays), any_day=dom == "*" or dom == "?", any_weekday=dow == "*" or dow == "?",
        )
        # refused here, where every schedule is read: found only when the next tick was computed, an
        # expression that never fires was stored, and failed every reader of the schedules after it
        if not parsed.any_day and parsed.any_weekday and not any(
                day <= _LONGEST_MONTH[m] for m in parsed.months for day in parsed.days):
            raise ConfigError(f"cron expression {text!r} never fires: none of its months has day "
                              f"{', '.join(map(str, sorted(parsed.days)))}")
        return parsed

    def _day_matches(self, d: datetime) -> bool:
        dom_ok = d.day in self.days
        dow_ok = (d.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow_ok
        if self.any_weekday:
            return dom_ok
        return dom_ok or dow_ok

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        """The first fire time strictly after ``after`` (aware), as an aware UTC datetime."""
        t = after.astimezone(tz).replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t = t + timedelta(seconds=1)
                continue
            local = t.replace(tzinfo=tz)
            # a wall time skipped by a DST change does not exist: move on
            if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != t:
                t = t + timedelta(seconds=1)
                continue
            return local.astimezone(UTC)
        raise ConfigError(f"cron expression {self.text!r} never fires")

    def times_after(self, after: datetime, tz: ZoneInfo) -> Iterator[datetime]:
        """Fire times after ``after``, forever."""
        t = after
        while True:
            t = self.next_after(t, tz)
            yield t


Overlap = Literal["allow", "skip", "cancel"]
CatchUp = Literal["skip", "run_once"]


@dataclass(frozen=True)
class CronSchedule:
    """A schedule firing a job.

    ``overlap``: what to do when a tick comes while the previous run of this
    schedule is unfinished (``allow`` another, ``skip`` the tick, ``cancel`` the
    running one and start anew). ``catch_up``: after downtime, ``skip`` the missed
    ticks or ``run_once`` for them.
    """

    name: str
    job: str
    expression: str
    timezone: str = "UTC"
    input: Any = None
    overlap: Overlap = "allow"
    catch_up: CatchUp = "skip"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 100 or any(c in self.name for c in "\n\r"):
            raise ConfigError(f"invalid schedule name {self.name!r}")
        if self.job and not NAME_RE.match(self.job):
            raise ConfigError(f"invalid job name {self.job!r}")
        CronExpression.parse(self.expression)
        self.tz  # noqa: B018 - validates the timezone
        if self.overlap not in ("allow", "skip", "cancel"):
            raise ConfigError("overlap must be allow, skip or cancel")
        if self.catch_up not in ("skip", "run_once"):
            raise ConfigError("catch_up must be skip or run_once")

    @property
    def tz(self) -> ZoneInfo:
        """The schedule's timezone."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"unknown timezone {self.timezone!r}") from exc

    @property
    def cron(self) -> CronExpression:
        """The parsed expression."""
        return CronExpression.parse(self.expression)

    def for_job(self, job: str) -> CronSchedule:
        """This schedule bound to a job."""
        return replace(self, job=job)

    def to_json(self) -> bytes:
        """Registry form."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, blob: bytes | str) -> CronSchedule:
        """Read the registry form."""
        return cls(**orjson.loads(blob))


class ScheduleRegistry:
    """The schedules an application defines, by name."""

    def __init__(self) -> None:
        self._items: dict[str, CronSchedule] = {}

    def add(self, schedule: CronSchedule) -> None:
        """Register a schedule; names are unique."""
        if schedule.name in self._items:
            raise ConfigError(f"schedule {schedule.name!r} is already registered")
        self._items[schedule.name] = schedule

    def __iter__(self) -> Iterator[CronSchedule]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)
