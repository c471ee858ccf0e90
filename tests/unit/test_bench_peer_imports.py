"""What bench/ runs in a peer's virtualenv imports without Baton installed there.

bench/main.py starts ``bench.driver`` with each peer's own Python, and the driver's load phase
starts ``bench.load_gen`` with that same Python (bench/pickup.py). A peer's virtualenv has the
peer and redis-py, not Baton or its dependencies: an import of ``runtime`` (or ``orjson``) at a
module's top made every peer's loaded-pickup phase fail ("the load process exited with code 1").
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import bench.adapters

#: the modules a peer's Python runs as ``-m`` (bench/main.py, bench/pickup.py)
PEER_ENTRY_POINTS = ["bench.driver", "bench.load_gen"]
#: every adapter but Baton's: the driver imports the one of the system it measures
PEER_ADAPTERS = sorted(f"bench.adapters.{m.name}" for m in pkgutil.iter_modules(bench.adapters.__path__)
                       if m.name not in {"baton", "base", "sync_base"})
#: what only Baton's virtualenv has
BATON_ONLY = ["runtime", "orjson", "uvloop", "prometheus_client"]


@pytest.mark.parametrize("module", PEER_ENTRY_POINTS + PEER_ADAPTERS)
def test_a_module_run_in_a_peers_virtualenv_imports_without_baton(module: str) -> None:
    # sys.modules[name] = None makes any import of name (or of a submodule) raise ImportError
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in BATON_ONLY)
    code = f"import sys; {blocked}; import {module}"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
