"""Run ids: time-ordered, URL-safe, and routable to a partition."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Set

from .keys import Keys

__all__ = ["NAME_RE", "RUN_ID_RE", "free_run_id", "new_run_id", "routed_run_id", "run_id_as_uuid", "run_id_from_uuid",
           "run_id_in_partition"]

#: Allowed run ids: what producers may supply and what stream entry ids look like.
RUN_ID_RE = re.compile(r"^[A-Za-z0-9_.:~-]{1,128}\Z")
#: Allowed job and queue names (they become parts of Redis keys and CSV lists). Both end
#: with \Z, not $: "$" also matches before a trailing newline.
NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}\Z")

_DIGITS = "0123456789abcdefghijklmnopqrstuv"
_PAIRS = [a + b for a in _DIGITS for b in _DIGITS]
_SHIFTS = tuple(range(120, -1, -10))


def new_run_id() -> str:
    """A new 26-character id: 48-bit millisecond time then 80 random bits, in
    base32hex (0-9, a-v), whose order is the numeric order: ids sort by time."""
    # 128 bits shifted to 130 are 13 groups of 10 bits, each two base32hex
    # digits from a table: several times faster than base64.b32hexencode,
    # which is pure Python (this runs once per submitted run)
    bits = (int(time.time() * 1000) << 80 | int.from_bytes(os.urandom(10), "big")) << 2
    return "".join([_PAIRS[(bits >> shift) & 1023] for shift in _SHIFTS])


def run_id_as_uuid(run_id: str) -> str | None:
    """A generated run id's 128 bits written as a UUID (None for an id new_run_id cannot have made)."""
    if len(run_id) != 26 or not all(c in _DIGITS for c in run_id) or int(run_id[-1], 32) & 3:
        return None
    return str(uuid.UUID(int=int(run_id, 32) >> 2))


def run_id_from_uuid(value: str) -> str | None:
    """The generated run id whose bits a UUID (canonical form) holds; None when ``value`` is not one."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    if str(parsed) != value:
        return None
    bits = parsed.int << 2
    return "".join(_DIGITS[(bits >> shift) & 31] for shift in range(125, -1, -5))


def routed_run_id(keys: Keys, routing_key: str | None, base: str | None = None,
                  avoid: Set[int] = frozenset()) -> str:
    """A run id whose partition equals the routing key's partition.

    With one partition any id fits. With several, a generated id is drawn again
    until it lands in the right partition (about N draws); a derived ``base``
    (a stream entry id) gets the smallest ``~k`` suffix that does, which a
    producer can compute too (crc32 of the id, modulo the partition count).
    Without either, any partition fits but those in ``avoid``.
    """
    if base is None:
        if routing_key is None or keys.partition_count == 1:
            return free_run_id(keys, avoid)
        target = keys.partition_for(routing_key).index
        while True:
            candidate = new_run_id()
            if keys.partition_of_run(candidate).index == target:
                return candidate
    if routing_key is None or keys.partition_count == 1:
        return base
    target = keys.partition_for(routing_key).index
    if keys.partition_of_run(base).index == target:
        return base
    k = 1
    while keys.partition_of_run(f"{base}~{k}").index != target:
        k += 1
    return f"{base}~{k}"


def free_run_id(keys: Keys, avoid: Set[int] = frozenset()) -> str:
    """A new id for a run any partition may hold, drawn again until it lands in one not in ``avoid``.

    ``avoid`` holds the partitions whose Redis Cluster master the caller knows does not answer
    (runtime/partition_outages.py): a run nothing pins to a partition is created on a master that
    answers instead of failing. With every partition in it (one server down) any id is returned,
    and its call fails as any would.
    """
    candidate = new_run_id()
    if avoid and len(avoid) < keys.partition_count:
        while keys.partition_of_run(candidate).index in avoid:
            candidate = new_run_id()
    return candidate


def run_id_in_partition(keys: Keys, index: int) -> str:
    """A new run id that lands in partition ``index`` (used by replay)."""
    while True:
        candidate = new_run_id()
        if keys.partition_of_run(candidate).index == index:
            return candidate
