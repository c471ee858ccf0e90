"""Some facts of a run are not stored as they read: started_at, heartbeat_at and updated_at are
derived from other times, id is the record's key, scheduled_at is stored only when later than
created_at, backoff, priority and source only when they are not the defaults (the default backoff,
0, client), and the last lease's fields stay after a run
ends (they mean a lease only while it executes). runtime/records.py (Run.from_hash) derives them;
code that reads them straight from a record gets a wrong or missing value (bench's drain
cross-check read started_at and lost its figure). This finds every such read of a run record
outside the readers that know."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: fields of a run record whose stored value is not what they mean (see runtime/records.py)
DERIVED = ("started_at", "heartbeat_at", "updated_at", "done_by", "lease_node", "lease_token", "lease_expires_at",
           "id", "scheduled_at", "backoff", "priority", "source")

#: readers that handle them, and why
ALLOWED = {
    "runtime/records.py": "derives them (Run.from_hash, record_attempts)",
    "runtime/timeline.py": "reads lease_node only for an executing run",
    "bench/chaos/stage.py": "reads lease_node with the status, counting executing runs only",
}

_READ = re.compile(r"\.h(?:m)?get\((?P<args>[^\n]*\.run\([^\n]*)")


def _sources() -> list[Path]:
    """The project's Python files that read Redis (virtualenvs left out: bench/ keeps its own)."""
    found = []
    for folder in ("runtime", "actors", "bench"):
        for dirpath, dirnames, filenames in os.walk(ROOT / folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found += [Path(dirpath) / f for f in filenames if f.endswith(".py")]
    return sorted(found)


def test_no_code_reads_a_derived_run_field_straight_from_the_record() -> None:
    offenders = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        if rel not in ALLOWED:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                m = _READ.search(line)
                if m and (names := [f for f in DERIVED if f'"{f}"' in m["args"]]):
                    offenders.append(f"{rel}:{number} reads {', '.join(names)}")
    assert offenders == [], "read these through runtime.records.Run.from_hash:\n" + "\n".join(offenders)


def test_the_check_finds_such_a_read() -> None:
    # the pattern the bench's cross-check had before it was fixed
    line = 'started = await self.redis.hget(p.run(self.first_id or ""), "started_at")'
    m = _READ.search(line)
    assert m and '"started_at"' in m["args"]


#: Lua readers of a run record's id or scheduled_at, and why they are right without them
LUA_ALLOWED = {
    "deps.lua": "an absent scheduled_at reads as 0, not later than now: the dependent is queued at once",
}
_LUA_READ = re.compile(r"call\('HM?GET', (?:rk|KEYS\[1\]|src_key|K\.run\([^)]*\))[^\n]*|read_fields\([^\n]*")


def test_no_lua_reads_a_run_id_or_scheduled_at_from_the_record() -> None:
    # records hold neither the run's id (its key names it) nor, mostly, scheduled_at (= created_at)
    offenders = []
    for path in sorted((ROOT / "runtime" / "lua").rglob("*.lua")):
        if path.name in LUA_ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = _LUA_READ.search(line)
            if m and ("'id'" in m.group(0) or "'scheduled_at'" in m.group(0)):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == [], offenders


def test_the_lua_check_finds_such_a_read() -> None:
    assert _LUA_READ.search("  local src_id = call('HGET', src_key, 'id')")
    assert _LUA_READ.search("  local r = call('HMGET', rk, 'scheduled_at', 'pause_requested')")
