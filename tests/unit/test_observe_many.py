"""observe_many: a batch of histogram observations exports exactly what one observe() per amount does."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from runtime.metrics import DURATION_BUCKETS, observe_many

#: zero, amounts on a bound exactly (counted in that bound's bucket), between bounds, past the
#: last finite bound (the +Inf bucket), and repeats of one bucket
AMOUNTS = [0.0, 0.001, 0.0010001, 0.0004, 0.0004, 0.05, 0.07, 30.0, 28800.0, 99999.0, 3.2]


def exported(observe: Any) -> bytes:
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "h", ["job_name"], buckets=DURATION_BUCKETS, registry=registry)
    child = histogram.labels("a")
    observe(child)
    return generate_latest(registry)


def test_observe_many_exports_what_one_observe_per_amount_does() -> None:
    # Given the same amounts observed one by one and in one batch
    def one_by_one(child: Any) -> None:
        for amount in AMOUNTS:
            child.observe(amount)

    # Then the buckets, count and sum exported are the same
    assert exported(lambda child: observe_many(child, AMOUNTS)) == exported(one_by_one)


def test_an_empty_batch_observes_nothing() -> None:
    assert exported(lambda child: observe_many(child, [])) == exported(lambda child: None)


def test_a_histogram_laid_out_otherwise_is_observed_one_amount_at_a_time() -> None:
    # Given an object with observe() but none of the client library's histogram fields
    class Plain:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

    plain = Plain()
    # When a batch is observed, then each amount reaches observe() in order
    observe_many(plain, AMOUNTS)
    assert plain.seen == AMOUNTS


@pytest.mark.parametrize("amount", [0.0025, 0.0025000001, 7200.0])
def test_each_amount_lands_in_the_bucket_observe_puts_it_in(amount: float) -> None:
    assert exported(lambda child: observe_many(child, [amount])) == exported(lambda child: child.observe(amount))
