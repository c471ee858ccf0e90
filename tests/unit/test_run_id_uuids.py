"""A generated run id and its UUID form (what the hatchet view emits) turn into each other exactly."""

from __future__ import annotations

import uuid

from runtime.ids import new_run_id, run_id_as_uuid, run_id_from_uuid


def test_generated_ids_and_their_uuids_round_trip() -> None:
    # Given many generated ids
    for _ in range(2000):
        run_id = new_run_id()
        # When each is written as a UUID, Then it is a canonical UUID that turns back into the same id
        as_uuid = run_id_as_uuid(run_id)
        assert as_uuid is not None and str(uuid.UUID(as_uuid)) == as_uuid
        assert run_id_from_uuid(as_uuid) == run_id


def test_ids_new_run_id_cannot_make_have_no_uuid_form() -> None:
    # Given ids of other shapes (caller-chosen, stream entry ids, 26 characters that are not 128 bits)
    for run_id in ("o-1", "1700000000000-0", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789abcdefghijklmnop", ""):
        # Then they have no UUID form (the hatchet view derives a UUIDv5 for them instead)
        assert run_id_as_uuid(run_id) is None, run_id
    # And only canonical UUIDs read back as generated ids
    value = str(uuid.uuid4())
    assert run_id_from_uuid(value) is not None
    for other in (value.upper(), value.replace("-", ""), f"{{{value}}}", "not-a-uuid"):
        assert run_id_from_uuid(other) is None, other
