"""Entries of one batch that share an id or a key are created in stream order."""

from __future__ import annotations

from typing import Any

from actors.entry_runs import rounds
from runtime.jobs import JobOptions
from runtime.keys import Keys
from runtime.settings import Settings
from runtime.submission import RunSpec, build_spec

SETTINGS = Settings(redis_url="redis://127.0.0.1:1")


def entry(n: int, **options: Any) -> tuple[str, RunSpec]:
    entry_id = f"1700000000000-{n}"
    spec = build_spec(SETTINGS, Keys(), lambda job: JobOptions(), job=options.pop("job", "work"),
                      derived_id=entry_id, entry_id=entry_id, **options)
    return entry_id, spec


def test_plain_entries_go_out_in_one_call() -> None:
    batch = [entry(n) for n in range(5)]
    assert rounds(batch) == [batch]


def test_a_later_entry_sharing_a_key_or_id_waits_for_the_earlier_one() -> None:
    # Given a batch where entries 1 and 3 share an idempotency key, 2 and 4 an explicit id,
    # and 5 a debounce key with 3 (a different kind of key: no conflict)
    batch = [
        entry(0), entry(1, idempotency_key="k"), entry(2, run_id="mine"), entry(3, idempotency_key="k"),
        entry(4, run_id="mine"), entry(5, debounce={"key": "k", "window": 1}), entry(6, job="other",
                                                                                     idempotency_key="k"),
    ]
    # When it is split into creation rounds
    split = [[eid for eid, _ in r] for r in rounds(batch)]
    # Then each later holder of a key goes out after the earlier one, everything else in the first call
    assert split == [
        ["1700000000000-0", "1700000000000-1", "1700000000000-2", "1700000000000-5", "1700000000000-6"],
        ["1700000000000-3", "1700000000000-4"],
    ]
