"""Shared limits without Redis: options, routing to the limit's partition, the stored forms."""

from __future__ import annotations

import pytest

from runtime import Baton, Settings
from runtime.errors import ConfigError, SubmissionError
from runtime.jobs import JobOptions
from runtime.keys import Keys
from runtime.shared_limits import SharedLimit, check_routing, decode_shared
from runtime.submission import build_spec, shared_limit_routing

SETTINGS = Settings(redis_url="redis://127.0.0.1:1", partitions=8)
KEYS = Keys("baton", 8)


def _partition(name: str) -> int:
    return KEYS.partition_for(shared_limit_routing(name)).index


def test_every_run_of_every_job_sharing_a_limit_lands_in_the_limit_partition() -> None:
    jobs = {"a": JobOptions(pool="gpu"), "b": JobOptions(pool="gpu", max_concurrency_per_key=1),
            "c": JobOptions(shared_rate="gpu", max_concurrency=3)}
    partitions = {KEYS.partition_of_run(build_spec(SETTINGS, KEYS, jobs.get, job=job, concurrency_key=f"k{i}").id)
                  .index for job in jobs for i in range(20)}
    assert partitions == {_partition("gpu")}


def test_a_job_with_a_pool_and_a_rate_in_two_partitions_is_refused() -> None:
    names = [f"n{i}" for i in range(20)]
    apart = next((a, b) for a in names for b in names if _partition(a) != _partition(b))
    app = Baton(SETTINGS)
    app.job("split", pool=apart[0], shared_rate=apart[1])(lambda ctx, x: None)
    with pytest.raises(ConfigError, match="two of the 8 partitions"):
        check_routing(app.keys, list(app.jobs))
    together = Baton(SETTINGS)
    together.job("ok", pool="x", shared_rate="x")(lambda ctx, x: None)
    check_routing(together.keys, list(together.jobs))


def test_job_options_and_definitions_are_checked() -> None:
    with pytest.raises(ConfigError):
        JobOptions(pool="a,b")
    with pytest.raises(ConfigError):
        JobOptions(fairness_weight=0)
    app = Baton(SETTINGS)
    with pytest.raises(ConfigError):
        app.define_pool("gpu", 0)
    with pytest.raises(ConfigError):
        app.define_rate_limit("openai", 1, 0)
    app.define_pool("llm", 4)
    app.define_rate_limit("llm", 10, 1.5)
    assert app.shared_limits.items() == [("llm", SharedLimit(4, (10, 1.5)))]


def test_stored_forms() -> None:
    # the job table entry carries the names after the six numbers; the Python reader ignores them
    assert JobOptions(pool="gpu").limit_spec == "0,0,0,0,0,0,gpu,"
    assert JobOptions(max_concurrency=2, shared_rate="r").limit_spec == "2,0,0,0,0,0,,r"
    assert JobOptions().limit_spec is None
    assert SharedLimit(3, (5, 0.5)).spec == "3,5,500"
    assert decode_shared(b"3,5,500") == SharedLimit(3, (5, 0.5))
    assert decode_shared(None) is None and decode_shared("x") == SharedLimit()
    with pytest.raises(SubmissionError):
        SharedLimit.from_dict({"pool": 3})
