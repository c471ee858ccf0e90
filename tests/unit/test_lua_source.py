"""Building a script's source: unused include functions are left out, and only those."""

from __future__ import annotations

import re

import pytest

from runtime.lua_source import _without_unused_functions, expanded_source, library, load_source
from runtime.scripts import SCRIPT_NAMES

_DEFINED = re.compile(r"^(?:local function ([A-Za-z_]\w*)|function ([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?))\s*\(", re.M)

SAMPLE = """\
local call = redis.call  --@per-call
local K = {}
function K.run(P, id) return P .. 'run:' .. id end
function K.unused(P) return P .. 'x' end
local forward
local function helper(x)
  -- a comment naming dropped_by_comment(x) keeps nothing
  return K.run('p', x) .. 'dropped_in_string()'
end
local function dropped_by_comment(x)
  return x
end
local function dropped_in_string()
  return 1
end
function forward(x)
  return helper(x)
end
local function recursive_but_unused(n)
  if n > 0 then return recursive_but_unused(n - 1) end
  return 0
end
return forward(ARGV[1])"""


def defined(source: str) -> set[str]:
    return {a or b for a, b in _DEFINED.findall(source)}


def test_only_what_the_kept_code_reaches_is_kept() -> None:
    lines = SAMPLE.split("\n")
    kept = _without_unused_functions(lines)
    assert len(kept) == len(lines)  # dropped blocks become blank lines: Lua's line numbers hold
    assert defined("\n".join(kept)) == {"K.run", "helper", "forward"}
    assert "local forward" in kept  # a forward declaration stays (it uses nothing)


def test_a_function_body_must_be_indented() -> None:
    with pytest.raises(ValueError, match="column 0"):
        _without_unused_functions(["local function f()", "return 1", "end", "return f()"])
    with pytest.raises(ValueError, match="no 'end'"):
        _without_unused_functions(["local function f()", "  return 1"])


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_no_script_calls_a_function_it_left_out(name: str) -> None:
    # An independent, cruder reading than the builder's: any `name(` on a line that is not a
    # comment, for each function the full expansion defines and the built source does not
    for built in (load_source(name), library(name).source):
        dropped = defined(expanded_source(name)) - defined(built)
        without_blocks = re.sub(r"--\[(=*)\[.*?\]\1\]", "", built, flags=re.S)
        code = "\n".join(line.split("--", 1)[0] for line in without_blocks.split("\n"))
        called = {f for f in dropped if re.search(rf"(?<![\w.]){re.escape(f)}\s*\(", code)}
        used_as_value = {f for f in dropped if "." in f and re.search(rf"(?<![\w.]){re.escape(f)}(?!\w)", code)}
        assert not called and not used_as_value, (name, called, used_as_value)


def test_the_hot_scripts_leave_out_what_they_never_reach() -> None:
    for name in ("runs_finish", "leases_renew"):
        assert len(defined(load_source(name))) < len(defined(expanded_source(name)))
