"""What the rejected stream keeps of a bad entry stays within REJECTED_ENTRY_BYTES as stored (JSON), however
many fields the entry has and whatever JSON escaping costs their values."""

from __future__ import annotations

import orjson
import pytest

from runtime.errors import SubmissionError
from runtime.stream_entries import REJECTED_ENTRY_BYTES, REJECTED_FIELD_BYTES, rejected_record

ERROR = SubmissionError("unknown_field", "unknown field(s)")


@pytest.mark.parametrize("fields", [
    {f"f{i}".encode(): b"v" for i in range(1000)},  # many small fields: the JSON's quotes and commas add up
    {f"f{i}".encode(): b"\x01" * 1024 for i in range(40)},  # each control character is six bytes escaped
    {f"f{i}".encode(): '"é\\'.encode() * 300 for i in range(40)},
])
def test_the_fields_kept_stay_within_their_budget_as_stored(fields: dict[bytes, bytes]) -> None:
    # When an entry far over the budget is rejected
    record = rejected_record("1-0", fields, ERROR)
    # Then what it keeps of the fields, as stored, is within the budget, says it was cut, and is the
    # original fields' first ones, each value's first REJECTED_FIELD_BYTES bytes
    assert len(record["fields"].encode()) <= REJECTED_ENTRY_BYTES, len(record["fields"].encode())
    assert record["truncated"] == "1"
    kept = orjson.loads(record["fields"])
    assert kept and all(kept[k] == fields[k.encode()][:REJECTED_FIELD_BYTES].decode(errors="replace") for k in kept)
    assert record["size"] == str(sum(len(k) + len(v) for k, v in fields.items()))


def test_an_entry_within_the_budget_is_kept_whole() -> None:
    fields = {b"job": b"echo", b"colour": b"blue"}
    record = rejected_record("1-0", fields, ERROR)
    assert (orjson.loads(record["fields"]), record["truncated"]) == ({"job": "echo", "colour": "blue"}, "0")
