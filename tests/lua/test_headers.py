"""Script headers against their wrappers: KEYS/ARGV counts, and negative codes against StatusCode."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from runtime.errors import StatusCode
from runtime.lua_source import LUA_DIR, load_source
from runtime.scripts import SCRIPT_NAMES, Outcome, Scripts, create_args
from runtime.submission import RunSpec
from tests.lua.support import Lua

HEADER_RE = re.compile(r"\A--\[\[(.*?)\]\]", re.DOTALL)


@dataclass(frozen=True)
class Header:
    """What a script's header comment declares."""

    keys: list[int]  #: KEYS[i] indices, in order of appearance
    argv: list[int]  #: fixed ARGV[i] indices
    variadic_from: int | None  #: i of an "ARGV[i..]" entry
    per_item: int | None  #: fields per repeated item ("N fields per ...", or 2 for "pairs")
    codes: list[int]  #: negative status codes named after "Returns:"
    body: str  #: the script after its header


def parse_header(name: str) -> Header:
    source = (LUA_DIR / f"{name}.lua").read_text()
    match = HEADER_RE.match(source)
    assert match, f"{name}.lua has no --[[ header ]]"
    text = match.group(1)
    before, _, returns = text.partition("Returns:")
    assert returns, f"{name}.lua header has no Returns: section"
    variadic = re.findall(r"ARGV\[(\d+)\.\.\]", before)
    per_item: int | None = None
    if variadic:
        tail = before[before.index(f"ARGV[{variadic[0]}..]"):]
        counted = re.search(r"(\d+) (?:fields|arguments?) per", tail)
        per_item = int(counted.group(1)) if counted else (2 if "pairs" in tail else None)
    # braces hold the shape of a list reply ({count, -1 when none}); codes are outside them
    codes_text = re.sub(r"\{[^}]*\}", "", returns)
    return Header(
        keys=[int(i) for i in re.findall(r"KEYS\[(\d+)\]", before)],
        argv=[int(i) for i in re.findall(r"ARGV\[(\d+)\](?!\.)", before)],
        variadic_from=int(variadic[0]) if variadic else None,
        per_item=per_item,
        codes=[-int(c) for c in re.findall(r"(?<![\w\[])-(\d+)", codes_text)],
        body=source[match.end():],
    )


HEADERS = {name: parse_header(name) for name in SCRIPT_NAMES}


@dataclass(frozen=True)
class Call:
    name: str
    keys: list[str]
    args: list[Any]


def sample_calls(lua: Lua) -> dict[str, tuple[Callable[[], Awaitable[Any]], int]]:
    """One wrapper call per script, with how many repeated items it passes."""
    p, s = lua.part, lua.scripts
    specs: list[RunSpec] = [lua.spec(), lua.spec(delay_s=5)]
    outcomes = [Outcome("r1", "n/1", "completed"), Outcome("r2", "n/1", "failed", error_json='{"message":"x"}')]
    return {
        "runs_create": (lambda: s.create(p, [x.script_args() for x in specs]), 2),
        "runs_claim": (lambda: s.claim(p, "n", 5, ["default", "q2"], ["work"], 3), 0),
        "leases_renew": (lambda: s.renew(p, [("r1", "n/1"), ("r2", "n/2"), ("r3", "n/3")]), 3),
        "runs_finish": (lambda: s.finish(p, outcomes), 2),
        "leases_reap": (lambda: s.reap(p, 10), 0),
        "runs_promote": (lambda: s.promote(p, 10), 0),
        "indices_trim": (lambda: s.trim_indices(p), 0),
        "run_cancel": (lambda: s.cancel("no-such-run"), 0),
        "run_replay": (lambda: s.replay("no-such-run", "new-run"), 0),
        "run_update": (lambda: s.update("no-such-run", "n/1", {"progress": "{}"}, [("log", "{}"), ("x", "1")]), 2),
        "step_record": (lambda: s.record_step("no-such-run", "n/1", "step", 0, "{}", True), 0),
        "checkpoint_add": (lambda: s.checkpoint("no-such-run", "n/1", "handler", "{}"), 0),
        "event_send": (lambda: s.send_event("some-key", "{}", 1000), 0),
        "signal_send": (lambda: s.send_signal("no-such-run", "go", "{}", 10), 0),
        "state_set": (lambda: s.set_state("no-such-run", "n/1", "{}"), 0),
        "token_create": (lambda: s.create_token("no-such-run", "n/1", "wpt_x", 1000, "[]", 1000), 0),
        "token_settle": (lambda: s.settle_token("wpt_x", "completed", "{}", "api"), 0),
        "message_take": (lambda: s.take_message("no-such-run", "n/1", "signal", "go", "__wait_signal#0", 0), 0),
        "scheduler_lease": (lambda: s.scheduler_lease("node-a", 1000), 0),
        "run_pause": (lambda: s.pause("no-such-run"), 0),
        "run_resume": (lambda: s.resume("no-such-run"), 0),
        "run_reschedule": (lambda: s.reschedule("no-such-run", None, 1000), 0),
        "run_restart": (lambda: s.restart("no-such-run", "new-run"), 0),
        "run_idem_reset": (lambda: s.reset_idempotency("no-such-run"), 0),
        "run_debug": (lambda: s.set_debug("no-such-run", True), 0),
        "run_watch": (lambda: s.watch("no-such-run"), 0),
        "run_delete": (lambda: s.delete("no-such-run"), 0),
        "run_append": (lambda: s.append("no-such-run", "n/1", "chunks", [("chunk", '"a"'), ("chunk", '"b"')]), 2),
        "reconcile": (lambda: s.reconcile(p), 0),
        "limits_apply": (lambda: s.limits_apply(p, "work", "override", "2,0,0,0,0,0"), 0),
        "webhook_claim": (lambda: s.webhook_claim(10, 1000), 0),
    }


@pytest.fixture
async def recorded(lua: Lua, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[Call, int]]:
    """Every wrapper called once against the real server, with the keys and args it passed."""
    calls: list[Call] = []
    real = lua.scripts._call

    async def spy(name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        calls.append(Call(name, list(keys), list(args)))
        return await real(name, keys, args)

    monkeypatch.setattr(lua.scripts, "_call", spy)
    out: dict[str, tuple[Call, int]] = {}
    for name, (call, items) in sample_calls(lua).items():
        await call()
        assert calls and calls[-1].name == name, f"wrapper for {name} called {calls[-1:]}"
        out[name] = (calls[-1], items)
    return out


def test_every_script_on_disk_is_loaded() -> None:
    # Given the .lua files next to the wrappers
    on_disk = {path.stem for path in LUA_DIR.glob("*.lua")}
    # Then the wrappers load exactly those, and each is wrapped by a Scripts method
    assert on_disk == set(SCRIPT_NAMES)
    assert all(hasattr(Scripts, m) for m in ("create", "claim", "renew", "finish", "reap", "promote", "cancel",
                                             "replay"))


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_header_lists_keys_and_argv_in_order(name: str) -> None:
    # Given a script's parsed header
    h = HEADERS[name]
    # Then KEYS and fixed ARGV are numbered 1..n without gaps, and a repeated block follows them
    assert h.keys == list(range(1, len(h.keys) + 1)) and h.keys, h.keys
    assert h.argv == list(range(1, len(h.argv) + 1)) and h.argv, h.argv
    if h.variadic_from is not None:
        assert h.variadic_from == len(h.argv) + 1
        assert h.per_item, f"{name}: ARGV[{h.variadic_from}..] does not say how many fields per item"
    # And the body reads no KEYS or ARGV the header does not list
    used_keys = {int(i) for i in re.findall(r"KEYS\[(\d+)\]", h.body)}
    assert used_keys <= set(h.keys), (name, used_keys)
    used_argv = {int(i) for i in re.findall(r"ARGV\[(\d+)\]", h.body)}
    assert used_argv <= set(h.argv), (name, used_argv)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
async def test_wrapper_passes_what_the_header_lists(name: str, recorded: dict[str, tuple[Call, int]]) -> None:
    # Given the keys and args the wrapper passed for a sample call
    call, items = recorded[name]
    h = HEADERS[name]
    # Then it passed exactly as many KEYS as the header lists
    assert len(call.keys) == len(h.keys), (name, call.keys)
    # And the fixed ARGV, plus whole repeated blocks of the header's size
    if h.variadic_from is None:
        assert len(call.args) == len(h.argv), (name, call.args)
    else:
        assert h.per_item is not None
        assert len(call.args) == len(h.argv) + items * h.per_item, (name, len(call.args))


async def test_all_keys_of_a_call_share_one_hash_tag(recorded: dict[str, tuple[Call, int]], lua: Lua) -> None:
    # Given every recorded call
    for name, (call, _) in recorded.items():
        # Then its KEYS carry the partition's hash tag (one cluster slot per script call);
        # the scheduler lease is node-wide and carries the deployment's tag instead
        tag = f"{{{lua.scripts.keys.prefix}}}:" if name in ("scheduler_lease", "webhook_claim") else lua.part.prefix
        assert all(k.startswith(tag) for k in call.keys), (name, call.keys)


def test_run_spec_fills_the_create_block() -> None:
    # Given runs_create's header and RunSpec's argument block
    spec = RunSpec(
        id="i", job="j", queue="q", input_json="null", priority=0, delay_ms=None, run_at_ms=None, labels_json="",
        tags_json="", metadata_json="", concurrency_key="", idempotency_key="", idempotency_ttl_ms=1,
        max_attempts=1, timeout_ms=1, backoff_json="{}", version="", source="s", entry_id="", extra_json="",
    )
    # Then the block is two arguments per run: a JSON array with RunSpec's fields up to its last
    # non-empty one, which the script reads by the names of the generated include (never by
    # position), and the input apart (not escaped inside the array)
    assert HEADERS["runs_create"].per_item == 2
    assert len(spec.script_args()) == len(RunSpec._fields)
    fields, input_json = create_args(spec.script_args())
    assert input_json == "null"
    expected = spec.script_args()[:RunSpec._fields.index("source") + 1]  # ("source" is its last non-empty field)
    expected[RunSpec._fields.index("input_json")] = ""
    assert orjson.loads(fields) == expected
    source = (LUA_DIR / "runs_create.lua").read_text()
    assert "--@include run_spec" in source and "JSON array of the run's fields (RunSpec" in source


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_negative_codes_in_headers_are_status_codes(name: str) -> None:
    # Given the negative codes a header names
    codes = HEADERS[name].codes
    # Then each is a StatusCode
    known = {int(c) for c in StatusCode}
    assert set(codes) <= known, (name, codes)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_negative_codes_returned_by_a_script_are_in_its_header(name: str) -> None:
    # Given the negative literals a script returns (directly, or as a per-item status)
    h = HEADERS[name]
    returned = {-int(c) for c in re.findall(r"(?:\breturn\s+|out\[#out \+ 1\]\s*=\s*)-(\d+)", h.body)}
    # Then its header names every one of them
    assert returned <= set(h.codes), (name, returned, h.codes)


def test_every_status_code_is_named_by_some_header() -> None:
    # Given all negative codes named by headers
    named = {c for h in HEADERS.values() for c in h.codes}
    # Then every StatusCode is used by at least one script, and the headers name the expected ones
    assert {int(c) for c in StatusCode} == named
    assert HEADERS["runs_finish"].codes == [-1]
    assert HEADERS["run_cancel"].codes == [-2, -3]
    assert HEADERS["run_replay"].codes == [-2, -4, -5, -7, -8]
    assert HEADERS["runs_promote"].codes == []
    assert HEADERS["step_record"].codes == [-1, -6]


#: the sets of runs that become due at their score (the leasers promote them): delayed runs, durable
#: waits' deadlines, queued runs' TTLs (a waiting run with no deadline has the score 1e15)
DUE_SETS = ("delayed", "waiting", "ttl")


def _locals_of(code: str, value: str) -> list[str]:
    """The names of the locals ``code`` sets to an expression matching ``value``
    (``local a, b = x, y`` too)."""
    found = []
    for names, values in re.findall(r"^\s*local ([\w, ]+?) = (.+)$", code, re.M):
        exprs, depth, start = [], 0, 0
        for i, ch in enumerate(values):
            depth += (ch in "({") - (ch in ")}")
            if ch == "," and depth == 0:
                exprs.append(values[start:i])
                start = i + 1
        exprs.append(values[start:])
        found += [n.strip() for n, e in zip(names.split(","), exprs, strict=False) if re.match(r"\s*" + value, e)]
    return found


def test_a_run_enters_a_due_set_only_through_add_due() -> None:
    # Given every Lua file (scripts and includes), and the names each gives a due set: the key
    # built in the call, a local holding it, or a KEYS entry its header says is one
    sets = "|".join(DUE_SETS)
    raw = []
    for path in sorted(LUA_DIR.rglob("*.lua")):
        code = path.read_text()
        names = [rf"K\.(?:{sets})\(", *(re.escape(n) for n in _locals_of(code, rf"K\.(?:{sets})\(")),
                 *(re.escape(f"KEYS[{n}]") for n in re.findall(rf"KEYS\[(\d+)\] [^\n]*\b(?:{sets}) set", code))]
        adds = re.compile(rf"""['"]ZADD['"]\s*,\s*(?:{'|'.join(names)})""")
        for number, line in enumerate(code.splitlines(), 1):
            if adds.search(line) and "1e15" not in line:
                raw.append(f"{path.relative_to(LUA_DIR)}:{number}: {line.strip()}")
    # Then none adds a run to a due set with a real due time by a plain ZADD: add_due notes it, so
    # the script announces it (a plain ZADD left a queued run's TTL to the next regular tick)
    assert raw == []


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_a_script_that_can_make_a_run_ready_wakes_the_nodes_at_its_end(name: str) -> None:
    # Given a script whose code (its includes pruned to what it uses) can put a run back into a
    # ready set (make_ready: a dependent its parent's end queues, a resumed or rescheduled run, ...)
    if "local function make_ready(" not in load_source(name):
        return
    # Then it ends through announce_work, which wakes the nodes when that happened (a run queued by
    # a call that woke nobody waited for a node's idle poll: a dependent ~0.5 s after its parent)
    body = HEADERS[name].body
    assert re.search(r"^announce_work\(", body, re.M), f"{name} can make runs ready and never wakes the nodes"
    # and it publishes no wake-up of its own beside (its own cases set WAKE: one wake-up per call)
    assert not re.search(r"call\('PUBLISH', (channel|ARGV\[\d+\]), pfx\)", body), name


@pytest.mark.parametrize("name", SCRIPT_NAMES)
async def test_a_script_that_can_make_a_run_due_announces_it_on_the_wake_channel(
        name: str, recorded: dict[str, tuple[Call, int]], lua: Lua) -> None:
    # Given a script whose code (its includes pruned to what it uses) can add a run to a set of due
    # runs (includes/common.lua, add_due)
    if "local function add_due(" not in load_source(name):
        return
    # Then it announces the earliest one before it returns, on the channel its header calls the
    # wake channel, which its wrapper passes (else the run waits for a node's next regular tick)
    h = HEADERS[name]
    announced = re.findall(r"^announce_work\(([^)]*)\)", h.body, re.M)
    assert announced, f"{name} notes due runs and never announces them"
    # naming the partition the script's keys are in (its ARGV[1], the key prefix): a node promotes
    # that one alone, not every partition, when the notice comes
    assert all(re.fullmatch(r"[^,]+,\s*now,\s*(pfx|ARGV\[1\])", a) for a in announced), (name, announced)
    wake = re.findall(r"ARGV\[(\d+)\] wake channel", HEADER_RE.match((LUA_DIR / f"{name}.lua").read_text())[1])
    assert len(wake) == 1, f"{name}: no ARGV named 'wake channel' in its header"
    call, _ = recorded[name]
    assert call.args[int(wake[0]) - 1] == lua.keys.wake_channel, (name, call.args)
    assert call.args[0] == lua.part.prefix, (name, call.args)
