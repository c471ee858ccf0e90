"""Digits are ASCII digits: one check (runtime.codec.digits) wherever text is read as a number.

str.isdigit() takes "²", which int() then refuses with a ValueError no caller expected (a cron step
"*/²" was not refused as a bad expression), and "١", which int() reads as 1.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.codec import digits

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("value", "expected"), [("0", True), ("0042", True), ("", False), ("²", False),
                                                 ("١", False), ("５", False), ("1_0", False), ("-1", False),
                                                 (" 1", False)])
def test_digits_are_ascii_digits(value: str, expected: bool) -> None:
    assert digits(value) is expected


def test_no_code_reads_digits_with_str_isdigit() -> None:
    own = ROOT / "runtime" / "codec.py"
    # (bench/ is left out: it runs in the peers' virtualenvs too, without Baton, and reads /proc)
    sources = [path for folder in ("runtime", "actors") for path in sorted((ROOT / folder).rglob("*.py"))
               if path != own]
    found = [f"{path.relative_to(ROOT)}:{n}" for path in sources
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\.is(digit|decimal|numeric)\(", line)]
    assert found == []
