"""bench/results keep no machine's own paths: the configuration a run saves names paths inside the checkout
relative to its root, and the run's temporary directory is only logged."""

from __future__ import annotations

import json
from typing import Any

from bench.common import ROOT
from bench.main import portable


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_a_saved_configuration_names_checkout_paths_from_its_root() -> None:
    cfg = {"py_spy": str(ROOT / "bench" / ".venv" / "bin" / "py-spy"), "reps": 3, "phases": ["drain"]}
    assert portable(cfg) == {"py_spy": "bench/.venv/bin/py-spy", "reps": 3, "phases": ["drain"]}


def test_no_results_file_holds_an_absolute_path() -> None:
    files = sorted((ROOT / "bench" / "results").rglob("*.json"))
    assert files
    found = {str(path.relative_to(ROOT)): [s for s in _strings(json.loads(path.read_text())["meta"])
                                           if s.startswith("/") or str(ROOT) in s]
             for path in files}
    assert {name: paths for name, paths in found.items() if paths} == {}

