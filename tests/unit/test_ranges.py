"""One range per numeric option, checked by build_spec for every path, shown in the README."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import SubmissionError
from runtime.jobs import JobOptions
from runtime.keys import Keys
from runtime.ranges import LAST_RENDERABLE_MS, RANGES, parse, ranges_markdown
from runtime.records import iso
from runtime.settings import Settings
from runtime.submission import RunSpec, build_spec

README = Path(__file__).resolve().parents[2] / "README.md"
SETTINGS = Settings(redis_url="redis://127.0.0.1:1")
KEYS = Keys()

#: How each range's option is given to build_spec (seconds options take the *_s name).
OPTION = {
    "priority": "priority", "max_attempts": "max_attempts", "delay": "delay_s", "run_at": "run_at",
    "timeout": "timeout_s", "ttl": "ttl_s", "idempotency_ttl": "idempotency_ttl_s",
    "fairness_weight": "fairness_weight",
}


def spec(**options: Any) -> RunSpec:
    return build_spec(SETTINGS, KEYS, lambda job: JobOptions(), job="work", **options)


def given(name: str, value: Any) -> RunSpec:
    if name.startswith("debounce_"):
        window = value if name == "debounce_window" else 1
        max_delay = value if name == "debounce_max" else 0
        return spec(debounce={"key": "d", "window": window, "max_delay": max_delay})
    if name == "delay_ms":
        return spec(delay_s=value / 1000)
    if name == "prefer_wait":  # (a wait for preferred labels: only with some)
        return spec(prefer_labels={"region": "eu"}, prefer_wait_s=value)
    return spec(**{OPTION[name]: value})


def test_the_readme_shows_the_one_range_table() -> None:
    # Given the README's table between its markers
    block = re.search(r"<!-- ranges -->\n(.*?)\n<!-- /ranges -->", README.read_text(), re.S)
    # Then it is exactly the table generated from the one definition
    assert block is not None and block.group(1) == ranges_markdown()


@pytest.mark.parametrize("name", sorted(RANGES))
def test_each_bound_is_accepted_and_just_past_it_rejected_naming_the_field(name: str) -> None:
    r = RANGES[name]
    step = 1 if r.integral else 0.001
    # Given the bounds themselves, then they are accepted
    given(name, int(r.low) if r.integral else r.low)
    given(name, int(r.high) if r.integral else r.high)
    # Given values just outside, NaN and infinity, then each is rejected with the field and the range
    outside: list[Any] = [r.low - step, r.high + step, math.nan, math.inf, -math.inf, True, "1"]
    if name == "delay_ms":  # given in ms, passed on as seconds
        outside = [-1, r.high + 1, math.nan]
    for value in outside:
        if name == "run_at" and isinstance(value, str):
            continue  # run_at takes text (epoch ms or ISO-8601): tested below
        with pytest.raises(SubmissionError) as err:
            given(name, value)
        field = "delay" if name == "delay_ms" else name
        assert err.value.reason == f"bad_{field}", (value, err.value.reason)
        assert field in str(err.value)


def test_an_integer_option_refuses_a_fractional_number() -> None:
    for name in ("priority", "max_attempts"):
        with pytest.raises(SubmissionError) as err:
            given(name, 2.5)
        assert err.value.reason == f"bad_{name}"


@pytest.mark.parametrize("text", ["1e308", "nan", "inf", "-1", "1" * 23, "0x10", "²", "1_000", "", " ", "1e99999"])
def test_stream_text_out_of_range_or_not_a_plain_number_is_rejected(text: str) -> None:
    # Given a field's text that is no plain number in range, then parsing it names the field
    for name in ("max_attempts", "timeout"):
        if name == "timeout" and text in ("1_000",):
            continue
        with pytest.raises(SubmissionError) as err:
            parse(name, text)
        assert err.value.reason == f"bad_{name}"


def test_stream_text_in_range_is_parsed() -> None:
    assert parse("priority", " -7 ") == -7
    assert parse("timeout", "2.5e1") == 25.0
    assert parse("idempotency_ttl", ".5") == 0.5


def test_run_at_accepts_what_renders_and_nothing_later() -> None:
    # Given the last renderable instant in each accepted form, then each is accepted and renders
    last = datetime.fromtimestamp(LAST_RENDERABLE_MS / 1000, tz=UTC)
    for value in (LAST_RENDERABLE_MS, str(LAST_RENDERABLE_MS), last, last.isoformat(), float(LAST_RENDERABLE_MS)):
        run_at_ms = spec(run_at=value).run_at_ms
        assert run_at_ms == LAST_RENDERABLE_MS
        assert iso(run_at_ms) == "9999-12-31T23:59:59.000Z"
    # And anything later, before 1970, zoneless or not a time is rejected naming run_at
    bad: list[Any] = [LAST_RENDERABLE_MS + 1, "99999999999999999", -1, "0001-01-01T00:00:00+00:00",
                      datetime(2030, 1, 1), "2030-01-01T00:00:00", "tomorrow", "²", math.nan, math.inf, 1e300,
                      "9" * 5000]
    for value in bad:
        with pytest.raises(SubmissionError) as err:
            spec(run_at=value)
        assert err.value.reason == "bad_run_at", value


def test_options_taken_from_the_job_are_checked_too() -> None:
    # Given a job registered (by some worker) with an attempt count no run can carry
    with pytest.raises(SubmissionError) as err:
        build_spec(SETTINGS, KEYS, lambda job: JobOptions(max_attempts=10**20), job="work")
    assert err.value.reason == "bad_max_attempts"


def test_text_options_that_cannot_be_encoded_are_rejected_naming_them() -> None:
    for name, options in (("idempotency_key", {"idempotency_key": "\ud800"}), ("version", {"version": "\udfff"}),
                          ("metadata", {"metadata": {"n": 10**30}}), ("labels", {"labels": {"k": "\ud800"}})):
        with pytest.raises(SubmissionError) as err:
            spec(**options)
        assert err.value.reason == f"bad_{name}"


def test_an_id_given_through_any_option_follows_the_id_rule() -> None:
    # derived_id (what the scheduler passes, reachable through trigger(**options)) became a run id unchecked
    for options in ({"run_id": "a b"}, {"derived_id": "a b"}, {"derived_id": "x" * 129}, {"derived_id": 7}):
        with pytest.raises(SubmissionError) as err:
            spec(**options)
        assert err.value.reason == "bad_id"
