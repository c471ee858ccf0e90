"""The chaos report: one Markdown table of figures per scenario, then every violation with examples."""

from __future__ import annotations

from .checker import EXAMPLES
from .stage import Result

__all__ = ["render"]

#: invariants with a column of their own (every other violation is listed under "other violations")
COLUMNS = {
    "runs lost": "runs lost",
    "results recorded twice": "results recorded twice",
    "steps re-run after completing": "steps re-run after completing",
}


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == float("inf"):
        return "never"
    return f"{value:.1f}"


def render(results: list[Result], header: list[str]) -> str:
    """The whole report: ``header`` lines (date, commit, command), the table, the details."""
    lines = [*header, ""]
    lines += [
        "| scenario | runs submitted | faults injected | runs lost | results recorded twice "
        "| steps re-run after completing | worst recovery (s) | worst run wait past a fault (s) "
        "| longest XADD to start (s) | other violations |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        v = r.verdict
        others = [f"{name}: {len(ex)}" for name, ex in v.violations.items() if name not in COLUMNS]
        wait = None if v.worst_wait_ms is None else v.worst_wait_ms / 1000
        pickup = None if v.worst_pickup_ms is None else v.worst_pickup_ms / 1000
        lines.append(
            f"| {r.name} | {v.submitted} | {len(r.faults)} | {v.count('runs lost')} "
            f"| {v.count('results recorded twice')} | {v.count('steps re-run after completing')} "
            f"| {_seconds(r.recovery_s)} | {_seconds(wait)} | {_seconds(pickup)} | {'; '.join(others) or 'none'} |"
        )
    lines += ["", "Worst recovery: the longest time from the end of a fault (kill, SIGCONT, Redis back, proxy "
              "healed) to the next run completing. Worst run wait past a fault: the longest time from a node "
              "being killed or stopped to the next attempt of a run it held. Longest XADD to start: the longest time "
              "from a run's stream entry to its first attempt (a delayed run's delay included).", ""]
    for r in results:
        lines += _details(r)
    return "\n".join(lines) + "\n"


def _details(r: Result) -> list[str]:
    v = r.verdict
    kinds: dict[str, int] = {}
    for f in r.faults:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    out = [f"## {r.name}", "", f"- setup: {r.params}; took {r.duration_s:.0f}s",
           "- faults: " + (", ".join(f"{k} x{n}" for k, n in kinds.items()) or "none"),
           "- final statuses: " + _counter(v.statuses),
           "- attempt outcomes: " + _counter(v.attempt_outcomes),
           "- reconcile drift: " + (", ".join(f"{k} {n}" for k, n in v.drift.items()) or "not measured")]
    if v.worst_wait_run:
        out.append(f"- longest wait past a fault: run {v.worst_wait_run}")
    if v.worst_pickup_ms is not None:
        out.append(f"- longest from XADD to the first attempt's start: {v.worst_pickup_ms / 1000:.1f}s "
                   f"(run {v.worst_pickup_run})")
    for name, value in v.notes.items():
        if name.startswith("traceback"):
            continue
        if isinstance(value, list):
            out.append(f"- {name}:")
            out += [f"  - {item}" for item in value]
        else:
            out.append(f"- {name}: {value}")
    if v.ok:
        out += ["- violations: none", ""]
        return out
    out.append("- violations:")
    for name, examples in v.violations.items():
        shown = "; ".join(f"`{e}`" for e in examples[:EXAMPLES])
        out.append(f"  - **{name}**: {len(examples)} (e.g. {shown})")
    out.append("")
    return out


def _counter(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items())) or "none"
