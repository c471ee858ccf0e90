"""Repetitions interleaved across systems: every system's repetition 1, then every system's repetition 2, ...

The systems of a run are measured one after the other, and this machine's speed moves by tens of
percent within minutes. Run back to back, each system's three repetitions fall in one stretch of a
few minutes, and a ratio between two systems partly measures the two stretches. Interleaved, each
system's repetitions spread over the whole run, so their medians meet the same hours. bench/main.py
runs each system's driver once per repetition (with ``reps`` 1) and merges the results here.
"""

from __future__ import annotations

from typing import Any

from bench.common import summarize

#: phases measured once per run, in the first repetition only: deterministic figures (memory) and
#: Baton's own tables, whose figures are not compared with a peer's
ONCE_PHASES = ("memory", "scaling", "monitor_calls", "renewals", "profile")

#: the keys of a metric that summarize() computes from its values (the rest are the metric's notes)
_SUMMARY = frozenset({"median", "min", "max", "n", "values"})


def rep_config(cfg: dict[str, Any], rep: int) -> dict[str, Any]:
    """The driver configuration of repetition ``rep`` (0-based) of an interleaved run."""
    return {**cfg, "reps": 1, "skip_phases": list(ONCE_PHASES) if rep > 0 else []}


def merge_metric(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One metric from its repetitions: the values of all, summarized again; notes from the first
    (``capped`` is true when any repetition was capped; a note that is a list, one entry per round
    of a repetition, is every repetition's, in order)."""
    values = [v for part in parts for v in part.get("values", [])]
    notes = {k: v for k, v in parts[0].items() if k not in _SUMMARY}
    if any(part.get("capped") for part in parts):
        notes["capped"] = True
    for key, value in notes.items():
        if isinstance(value, list):
            notes[key] = [v for part in parts for v in part.get(key, [])]
    return {**summarize(values), **notes}


def merge_reps(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """A system's result from its repetitions' results (each a driver's output, in order).

    A failed repetition fails the system (with the repetition named). Metrics merge their values;
    raw lists are concatenated and other raw entries kept from the last repetition that has them;
    errors are kept from the first repetition that reports each; time adds up.
    """
    for i, rep in enumerate(reps):
        if "failed" in rep:
            return {**rep, "failed": f"repetition {i + 1}: {rep['failed']}"}
    merged: dict[str, Any] = {**reps[-1], "metrics": {}, "raw": {}, "errors": {}}
    names = list(dict.fromkeys(name for rep in reps for name in rep.get("metrics", {})))
    for name in names:
        merged["metrics"][name] = merge_metric([rep["metrics"][name] for rep in reps if name in rep["metrics"]])
    for rep in reps:
        for key, value in rep.get("raw", {}).items():
            before = merged["raw"].get(key)
            merged["raw"][key] = before + value if isinstance(before, list) and isinstance(value, list) else value
        for key, value in rep.get("errors", {}).items():
            merged["errors"].setdefault(key, value)
    seconds = [float(rep.get("seconds", 0.0)) for rep in reps]
    merged["seconds"] = round(sum(seconds), 1)
    if total := sum(seconds):
        merged["other_load_cores"] = round(
            sum(float(rep.get("other_load_cores", 0.0)) * s for rep, s in zip(reps, seconds, strict=True)) / total, 2)
    return merged
