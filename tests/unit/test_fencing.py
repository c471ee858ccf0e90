"""The monotonic deadline a node gives a lease it was handed (runtime/fencing.handed_deadline)."""

from __future__ import annotations

import pytest

from runtime.fencing import handed_deadline

TTL_MS = 2000


@pytest.mark.parametrize(("granted_ms", "expected"), [
    # granted while the pop waited: the whole TTL from the pop's start, as for a call that grants
    (10_000, 100.0 + 2.0),
    (12_500, 100.0 + 2.0),
    # granted before the pop started: what was left of it when the pop ran
    (9_500, 100.0 + 1.5),
    # granted a whole TTL or more before: already over
    (8_000, 100.0),
    (5_000, 97.0),
])
def test_a_handed_lease_is_dated_from_its_grant(granted_ms: int, expected: float) -> None:
    # Given a pop sent at monotonic 100 s that saw the Redis clock at 10,000 ms
    # Then a lease granted at granted_ms surely holds until expected (never past its TTL from the pop)
    assert handed_deadline(100.0, 10_000, granted_ms, TTL_MS) == pytest.approx(expected)
