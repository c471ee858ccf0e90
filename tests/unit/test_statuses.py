"""Statuses are defined once (runtime/statuses.py): the README and the API's vocabulary follow it."""

from __future__ import annotations

import re
from pathlib import Path

from runtime.api.views import NATIVE_STATUSES
from runtime.metrics import FINAL_STATUSES, OUTCOMES
from runtime.records import LIVE_STATUSES, TERMINAL_STATUSES
from runtime.statuses import LIVE, TERMINAL, AttemptOutcome, RunStatus

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_status_is_live_or_terminal_and_not_both() -> None:
    assert set(LIVE) | set(TERMINAL) == set(RunStatus) and not set(LIVE) & set(TERMINAL)
    assert LIVE_STATUSES == set(LIVE) and TERMINAL_STATUSES == set(TERMINAL)
    assert RunStatus.PAUSED in LIVE  # a paused run is not finished (cron's overlap policy relies on it)


def test_the_derived_vocabularies_match_the_one_definition() -> None:
    assert NATIVE_STATUSES == tuple(RunStatus)
    assert set(OUTCOMES) == set(AttemptOutcome)
    assert set(FINAL_STATUSES) <= set(TERMINAL)


def test_the_readme_names_exactly_the_statuses_and_outcomes() -> None:
    text = README.read_text()
    paragraph = " ".join(text.split("**Statuses**", 1)[1].split("\n\n", 1)[0].split())
    runs, attempts = paragraph.split("Attempt statuses:", 1)
    assert set(re.findall(r"`([a-z_]+)`", runs)) == {s.value for s in RunStatus}
    named = set(re.findall(r"`([a-z_]+)`", attempts.split("A run past its timeout", 1)[0]))
    assert named == {o.value for o in AttemptOutcome} | {"max_attempts"}
