"""The short path of plain submissions gives exactly what the full validation gives."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from runtime.errors import SubmissionError
from runtime.jobs import Backoff, JobOptions
from runtime.keys import Keys
from runtime.settings import Settings
from runtime.stream_entries import parse_stream_entry
from runtime.submission import PlainSpecs, RunSpec, build_spec

JOBS = {
    "plain": JobOptions(),
    "tuned": JobOptions(queue="slow", priority=7, max_attempts=9, timeout_s=12, version="v2", ttl_s=60,
                        backoff=Backoff(kind="fixed", initial_s=0.5)),
    "limited": JobOptions(max_concurrency=2),
    "per_key_rate": JobOptions(rate_limit_per_key=(1, 1.0), rate_key="input:user"),
}


def lookup(job: str) -> JobOptions | None:
    return JOBS.get(job)


def settings() -> Settings:
    return Settings(redis_url="redis://127.0.0.1:1", partitions=4, max_input_bytes=64)


def without_id(spec: RunSpec) -> tuple[Any, ...]:
    return tuple(spec)[1:]


@pytest.mark.parametrize("job", ["plain", "tuned", "limited"])
def test_a_plain_spec_equals_the_fully_validated_one(job: str) -> None:
    # Given the full path's spec of a run of the job with only an input
    s = settings()
    keys = Keys(s.prefix, s.partitions)
    full = build_spec(s, keys, lookup, job=job, input={"n": 1})
    # When the short path makes one (twice: the second reuses the validated base)
    plain = PlainSpecs(s, keys)
    first = plain.spec(lookup, job, orjson.dumps({"n": 1}).decode(), "client")
    second = plain.spec(lookup, job, orjson.dumps({"n": 1}).decode(), "client")
    # Then everything but the id is the same, and the ids are routed like the full path's
    assert first is not None and second is not None
    assert without_id(first) == without_id(full) == without_id(second)
    assert first.id != second.id
    if job == "limited":  # exact limits need every run of the job in one partition
        assert keys.partition_of_run(first.id) == keys.partition_of_run(full.id)


def test_jobs_the_short_path_cannot_serve_fall_back() -> None:
    s = settings()
    plain = PlainSpecs(s, Keys(s.prefix, s.partitions))
    # a per-key rate limit reads its key from the input; an unknown job needs the full error
    assert plain.spec(lookup, "per_key_rate", '{"user": "a"}', "client") is None
    assert plain.spec(lookup, "nope", "1", "client") is None


def test_the_short_path_refuses_oversized_input() -> None:
    s = settings()
    plain = PlainSpecs(s, Keys(s.prefix, s.partitions))
    with pytest.raises(SubmissionError) as err:
        plain.spec(lookup, "plain", '"' + "x" * 100 + '"', "client")
    assert err.value.reason == "too_large"


def test_a_plain_stream_entry_matches_the_full_parse() -> None:
    # Given one stream entry of just a job and an input
    s = settings()
    keys = Keys(s.prefix, s.partitions)
    fields = {b"job": b"tuned", b"input": b'{"a": 1}'}
    # When it is parsed with and without the short path
    short = parse_stream_entry("1700000000000-1", fields, s, keys, lookup, PlainSpecs(s, keys))
    full = parse_stream_entry("1700000000000-1", fields, s, keys, lookup)
    # Then both give the same spec, id included (it derives from the entry id)
    assert short == full
    # And malformed input is still rejected with its reason
    with pytest.raises(SubmissionError) as err:
        parse_stream_entry("1700000000000-2", {b"job": b"plain", b"input": b"{nope"}, s, keys, lookup,
                           PlainSpecs(s, keys))
    assert err.value.reason == "bad_json"
