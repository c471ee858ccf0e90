"""Every write Baton makes for a running handler waits out a Redis outage while the lease holds.

A write of the run context sent to Redis on its own would fail the attempt (charged) on the
first blip, as step records did before runtime/redis_faults.py ride_out. So every fenced script
call (one carrying the lease token) in the modules a handler's context uses must be made
inside ``_on_lease(...)``: this test reads their source and names any that is not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: the modules whose code runs on a handler's behalf, with its lease token
HANDLER_MODULES = ["runtime/context.py", "runtime/run_records.py", "runtime/signals.py", "runtime/tokens.py"]


def fenced_calls_outside_on_lease(source: str) -> list[str]:
    """``line: call`` of each ``*.scripts.<name>`` call or reference passed the lease token
    (``*._token``) that is not inside an ``_on_lease(...)`` call."""
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def inside_on_lease(node: ast.AST) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_on_lease":
                return True
        return False

    def passes_the_token(call: ast.Call) -> bool:
        return any(isinstance(arg, ast.Attribute) and arg.attr == "_token" for arg in call.args)

    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and passes_the_token(node)):
            continue
        # the script itself, called directly or handed to functools.partial
        targets = [node.func, *node.args]
        if any(isinstance(t, ast.Attribute) and isinstance(t.value, ast.Attribute) and t.value.attr == "scripts"
               for t in targets) and not inside_on_lease(node):
            found.append(f"{node.lineno}: {ast.unparse(node)[:80]}")
    return found


@pytest.mark.parametrize("module", HANDLER_MODULES)
def test_every_fenced_write_of_a_handler_goes_through_on_lease(module: str) -> None:
    assert fenced_calls_outside_on_lease((ROOT / module).read_text()) == []


def test_the_check_finds_a_write_made_on_its_own() -> None:
    # Given a fenced write made outside _on_lease, and the same one inside it
    bare = "async def f(ctx):\n    await ctx._app.scripts.set_state(ctx.run_id, ctx._token, 'x')\n"
    wrapped = ("async def f(ctx):\n    await ctx._on_lease(lambda: ctx._app.scripts.set_state(ctx.run_id, ctx._token, "
               "'x'), 'w')\n")
    partial = ("async def f(self):\n    await functools.partial(self._app.scripts.append, self.run_id, self._token, "
               "'chunks', [])()\n")
    # Then the check names the bare ones and passes the wrapped one
    assert fenced_calls_outside_on_lease(bare) == ["2: ctx._app.scripts.set_state(ctx.run_id, ctx._token, 'x')"]
    assert fenced_calls_outside_on_lease(wrapped) == []
    assert len(fenced_calls_outside_on_lease(partial)) == 1
