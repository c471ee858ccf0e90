"""A Lua script's source as Redis gets it: as a script (EVALSHA) or as a library (FCALL).

A script file's ``--@include name`` lines (at its top, after its header
comment) pull in ``lua/includes/name.lua``, which may include others; the rest
of the file is the script's body.

Redis runs a script's whole top-level chunk on every EVALSHA: each ``local
function`` and ``function K.name`` of the includes builds a closure again (about
440 instructions each; the ~130 a claim pulled in were ~18 us of its Redis
CPU). Two things cut that. ``library`` makes the script a Redis Functions
library: the includes run once, at FUNCTION LOAD, and each FCALL runs the body
only. And both forms leave out every top-level function nothing kept refers to
(a dropped block becomes blank lines, so Lua's line numbers stay those of the
expanded source).

Rules the includes follow for this. A top-level function starts at column 0
with ``local function name(``, ``function name(`` (a local declared earlier) or
``function Table.name(`` and ends at the next line that is exactly ``end`` (or
on its own line when that line ends in `` end``); everything inside is
indented. Top-level code uses no global function: a library's top level runs
where only ``redis.register_function`` and ``redis.log`` exist. State a call
sets up or fills (``redis.call`` itself, per-call caches) is declared
``local name = <expr>  --@per-call``: a script's top level runs it on every
call, a library sets it at the start of every call, so nothing carries over
from one call to the next. A name is referred to when it occurs as a word
outside comments and strings.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LIBRARY_PREFIX", "LUA_DIR", "Library", "expanded_source", "library", "load_source"]

LUA_DIR = Path(__file__).parent / "lua"
#: every Baton library's name starts so (a node removes those of other versions: see Scripts)
LIBRARY_PREFIX = "baton_"

#: a top-level function: ``local function f(``, ``function f(`` (a local declared earlier) or ``function T.f(``
_DEFINITION = re.compile(r"^(?:local function ([A-Za-z_]\w*)|function ([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?))\s*\(")
#: per-call state: ``local name = <expr>  --@per-call``
_PER_CALL = re.compile(r"^local ([A-Za-z_]\w*) = (.+?)\s*--@per-call\s*$")
#: a forward declaration (``local f`` or ``local f, g``): names a local, uses nothing
_DECLARATION = re.compile(r"^local\s+[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*\s*$")
#: Lua's comments and strings (skipped) and words (``name`` or ``Table.name``, kept in group 3)
_TOKEN = re.compile(r"""--\[(=*)\[.*?\]\1\]|--[^\n]*|\[(=*)\[.*?\]\2\]|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|"""
                    r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)", re.S)


def _words(code: str) -> set[str]:
    """The names ``code`` uses, outside its comments and strings."""
    return {match.group(3) for match in _TOKEN.finditer(code) if match.group(3)}


@functools.cache
def load_source(name: str) -> str:
    """The source of script ``name`` as EVAL / SCRIPT LOAD get it."""
    head, body = _parts(name)
    return "\n".join(_without_unused_functions(head + body)) + "\n"


def expanded_source(name: str) -> str:
    """Script ``name`` with its ``--@include`` lines replaced by the includes, every function kept."""
    head, body = _parts(name)
    return "\n".join(head + body)


@dataclass(frozen=True)
class Library:
    """A script as a Redis Functions library holding one function of the same name."""

    #: library and function name, ``baton_<script>_<hash of the code>``: versions never collide
    name: str
    #: what FUNCTION LOAD gets
    source: str


@functools.cache
def library(name: str) -> Library:
    """Script ``name`` as a library: the includes run once, when the library is loaded, and the
    script's own body is the function (KEYS and ARGV its arguments). Per-call state (an include's
    ``local x = <expr>  --@per-call``) is declared at load and set at the start of each call."""
    head, body = _parts(name)
    lines = _without_unused_functions(head + body)
    head, body = lines[:len(head)], lines[len(head):]
    resets = []
    for i, line in enumerate(head):
        if "--@per-call" in line and not line.startswith("--"):
            match = _PER_CALL.match(line)
            if match is None:
                raise ValueError(f"{name}: --@per-call marks a line that is not 'local <name> = <expr>': {line!r}")
            head[i] = f"local {match.group(1)}"
            resets.append(f"{match.group(1)} = {match.group(2)}")
    def code(function: str) -> str:
        # the function starts on one line (its resets with it), so body lines keep their numbers + 1
        return "\n".join([*head, f"redis.register_function('{function}', function(KEYS, ARGV) {'; '.join(resets)}",
                          *body, "end)", ""])

    full = f"{LIBRARY_PREFIX}{name}_{hashlib.sha1(code('').encode()).hexdigest()[:12]}"
    return Library(full, f"#!lua name={full}\n" + code(full))


def _parts(name: str) -> tuple[list[str], list[str]]:
    """Script ``name``'s lines up to its last ``--@include`` (the includes expanded), and the rest:
    its body. Only comments may come before an include."""
    lines = (LUA_DIR / f"{name}.lua").read_text().splitlines()
    includes = [i for i, line in enumerate(lines) if line.startswith("--@include ")]
    split = includes[-1] + 1 if includes else 0
    if _words("\n".join(line for i, line in enumerate(lines[:split]) if i not in includes)):
        raise ValueError(f"{name}.lua: code before an --@include (only comments may precede the includes)")
    return _expanded(lines[:split]), lines[split:]


def _expanded(lines: list[str]) -> list[str]:
    """``lines`` with each ``--@include`` line replaced by that include, expanded in turn."""
    out: list[str] = []
    for line in lines:
        if line.startswith("--@include "):
            out.extend(_expanded((LUA_DIR / "includes" / f"{line.split()[1]}.lua").read_text().splitlines()))
        else:
            out.append(line)
    return out


@dataclass
class _Function:
    """One top-level function definition: its lines [first, last] and the words its body uses."""

    first: int
    last: int
    words: set[str]


def _without_unused_functions(lines: list[str]) -> list[str]:
    lines = list(lines)
    functions: dict[str, _Function] = {}
    rest: list[str] = []  # the lines outside functions: what they use is always kept
    i = 0
    while i < len(lines):
        match = _DEFINITION.match(lines[i])
        if match is None:
            if not _DECLARATION.match(lines[i]):
                rest.append(lines[i])
            i += 1
            continue
        name = match.group(1) or match.group(2)
        if name in functions:
            raise ValueError(f"Lua function {name} is defined twice (lines {functions[name].first + 1}, {i + 1})")
        last = i if lines[i].rstrip().endswith(" end") else _block_end(lines, i)
        functions[name] = _Function(i, last, _words("\n".join(lines[i:last + 1])[match.end():]))
        i = last + 1
    kept: set[str] = set()
    pending = [word for word in _words("\n".join(rest)) if word in functions]
    while pending:
        name = pending.pop()
        if name not in kept:
            kept.add(name)
            pending.extend(word for word in functions[name].words if word in functions)
    for name, function in functions.items():
        if name not in kept:
            lines[function.first:function.last + 1] = [""] * (function.last - function.first + 1)
    return lines


def _block_end(lines: list[str], first: int) -> int:
    """The index of the ``end`` line closing the top-level function that starts at ``first``."""
    for i in range(first + 1, len(lines)):
        line = lines[i]
        if line == "end":
            return i
        if line and not line[0].isspace() and not line.startswith("--"):
            raise ValueError(f"Lua line {i + 1} is at column 0 inside the function starting at line {first + 1}: "
                             f"{line[:60]!r} (indent function bodies; close them with 'end' at column 0)")
    raise ValueError(f"the Lua function starting at line {first + 1} has no 'end' at column 0")
