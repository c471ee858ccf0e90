"""A claim reply's runs are read by position (runtime/script_replies.py claimed_runs), in the order
CLAIM_FIELDS names, which the Lua writes through the generated include claim_reply.lua: each
field must land in the Claimed attribute of its name, however CLAIM_FIELDS is reordered."""

from __future__ import annotations

import orjson

from runtime.script_replies import CLAIM_FIELDS, Claimed, claimed_runs, handed_off_runs

#: what each reply field becomes in Claimed (name, value sent, value read)
SENT = {
    "run_id": ("run_id", b"r1", "r1"),
    "token": ("token", b"node-a/2", "node-a/2"),
    "attempt": ("attempt", 2, 2),
    "job": ("job", b"work", "work"),
    "input": ("input_json", b'{"n":1}', b'{"n":1}'),
    "timeout_ms": ("timeout_ms", b"12000", 12000),
    "ready_at_ms": ("ready_at_ms", b"900", 900),
    "metadata": ("metadata_json", b'{"m":1}', b'{"m":1}'),
    "tags": ("tags_json", b'["t"]', b'["t"]'),
    "step_count": ("step_count", 1, 1),
}


def test_every_reply_field_lands_in_its_attribute() -> None:
    assert set(SENT) == set(CLAIM_FIELDS)
    flat = [SENT[name][1] for name in CLAIM_FIELDS]
    [c] = claimed_runs(flat, now=1000, partition=3)
    assert {SENT[name][0]: getattr(c, SENT[name][0]) for name in CLAIM_FIELDS} == {
        attr: read for attr, _, read in SENT.values()}
    assert (c.partition, c.claimed_at_ms) == (3, 1000)


def test_absent_fields_read_as_their_defaults() -> None:
    # a hand-off push is JSON, where Lua's false stands for nil: no metadata, tags or ready time
    flat = [SENT[name][1] for name in CLAIM_FIELDS]
    for name in ("metadata", "tags", "ready_at_ms", "step_count"):
        flat[CLAIM_FIELDS.index(name)] = False
    payload = orjson.dumps([1000, [v.decode() if isinstance(v, bytes) else v for v in flat * 2]])
    runs = handed_off_runs(payload, 0)
    assert len(runs) == 2 and all(isinstance(c, Claimed) for c in runs)
    assert [(c.metadata_json, c.tags_json, c.ready_at_ms, c.step_count) for c in runs] == [(None, None, 1000, 0)] * 2
    assert runs[0].input_json == b'{"n":1}'
