"""Every way a context ends an attempt is noted on it (runtime/attempt_ends.py, Endings), so that a handler
catching it cannot complete its run past a wait it began."""

from __future__ import annotations

import re
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"


def test_every_attempt_ending_is_raised_through_endings_note() -> None:
    # Given every module of the runtime
    bare = [f"{path.relative_to(RUNTIME.parent)}:{n}" for path in sorted(RUNTIME.rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(r"\braise (Suspend|ContinueAsNew)\(", line)]
    # Then none raises a Suspend or a ContinueAsNew without noting it (endings.note(...))
    assert not bare, bare
