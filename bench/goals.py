"""The performance goals of issue #20, checked against one run's results (never hand-written).

Each goal compares a Baton figure with a fixed target or with the best peer
measured in the same run; a figure that was not measured shows as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.pickup_floor import WRITE_FIRST

Results = list[dict[str, Any]]


@dataclass(frozen=True)
class Verdict:
    """One row of the goals table."""

    goal: str
    measured: str
    target: str
    met: bool | None  # None: not measured


def _median(res: dict[str, Any] | None, key: str) -> float | None:
    m = (res or {}).get("metrics", {}).get(key) or {}
    v = m.get("median")
    return float(v) if v is not None and v == v else None


def _ok(results: Results) -> tuple[dict[str, Any] | None, Results]:
    ok = [r for r in results if "failed" not in r]
    baton = next((r for r in ok if r["system"] == "baton"), None)
    return baton, [r for r in ok if r["system"] != "baton"]


def _best(peers: Results, key: str, better: Callable[[float, float], bool],
          keep: Callable[[dict[str, Any]], bool] = lambda r: True) -> tuple[str, float] | None:
    """(system, value) of the peer with the best median of ``key``."""
    best: tuple[str, float] | None = None
    for r in peers:
        v = _median(r, key)
        if v is not None and keep(r) and (best is None or better(v, best[1])):
            best = (r["system"], v)
    return best


def _single_process(r: dict[str, Any]) -> bool:
    return int((r["metrics"].get("drain") or {}).get("processes", 1)) == 1


def _ratio_goal(goal: str, mine: float | None, peer: tuple[str, float] | None, target: float) -> Verdict:
    if mine is None or peer is None:
        return Verdict(goal, "not measured", f"≥ {target:g}×", None)
    ratio = mine / peer[1]
    return Verdict(goal, f"{ratio:.2f}× ({mine:,.0f} vs {peer[0]} {peer[1]:,.0f} runs/s)", f"≥ {target:g}×",
                   ratio >= target)


def _pickup_goals(path: str, key: str, baton: dict[str, Any] | None, peers: Results,
                  floor: str | None = None) -> list[Verdict]:
    """The p50 and p99 goals of one submit path; ``floor`` names the pickup_floor shape of the path,
    whose figure (no job system at all) is shown beside Baton's."""
    out = []
    for q, target, scale in (("p50", "≤ best peer's p50", 1.0), ("p99", "≤ 0.9 × best peer's p99", 0.9)):
        mine = _median(baton, f"{key}_{q}_ms")
        best = _best(peers, f"latency_{q}_ms", lambda a, b: a < b)
        goal = f"pickup {q}, {path}"
        if mine is None or best is None:
            out.append(Verdict(goal, "not measured", target, None))
            continue
        shape = _median(baton, f"floor_{floor}_{q}_ms") if floor else None
        at_floor = f"; the path's shape with no job system: {shape:.2f} ms" if shape is not None else ""
        out.append(Verdict(goal, f"{mine:.2f} ms (best peer {best[0]} {best[1]:.2f} ms{at_floor})",
                           f"≤ {scale * best[1]:.2f} ms" + (" (0.9×)" if scale != 1 else ""),
                           mine <= scale * best[1]))
    return out


def _bound(goal: str, value: float | None, bound: float, unit: str, fmt: str) -> Verdict:
    if value is None:
        return Verdict(goal, "not measured", f"≤ {bound:g} {unit}", None)
    return Verdict(goal, f"{value:{fmt}} {unit}", f"≤ {bound:g} {unit}", value <= bound)


def verdicts(results: Results) -> list[Verdict]:
    """Every goal of #20 against this run."""
    baton, peers = _ok(results)
    drain = _median(baton, "drain")
    cpu_10k = _median(baton, "redis_cpu_per_10k")
    return [
        _ratio_goal("drain, 1 process at default settings, vs the fastest single-process peer", drain,
                    _best(peers, "drain", lambda a, b: a > b, _single_process), 3),
        _ratio_goal("drain, 1 process, vs dramatiq's default worker (one process per CPU)", drain,
                    _best([r for r in peers if r["system"] == "dramatiq-default"], "drain", lambda a, b: a > b), 2),
        *_pickup_goals("submitted by a plain client's XADD to the stream", "latency_xadd", baton, peers,
                       floor=WRITE_FIRST),
        *_pickup_goals("submitted with app.trigger", "latency", baton, peers),
        _bound("Redis CPU per run, drain", None if cpu_10k is None else cpu_10k * 100, 40, "µs", ".0f"),
        _bound("Redis commands per run, drain (INFO commandstats, Lua-internal included)",
               _median(baton, "calls_per_run"), 15, "commands", ".1f"),
        _bound("Redis memory per queued run, 100-byte input", _median(baton, "memory_per_run"), 600, "B", ".0f"),
        _loaded_goal(baton, peers),
    ]


def _loaded_goal(baton: dict[str, Any] | None, peers: Results) -> Verdict:
    """The pickup p99 under load, with a PING's p99 to the same server under the same load beside it,
    and the best peer's p99 under a load of half its own drain rate when the run measured one."""
    verdict = _bound("pickup p99 of a new run, node draining at half its capacity",
                     _median(baton, "latency_load_p99_ms"), 2, "ms", ".2f")
    if verdict.met is None:
        return verdict
    beside = []
    ping = _median(baton, "latency_load_ping_p99_ms")
    if ping is not None:
        beside.append(f"a PING to the same server meanwhile: p99 {ping:.2f} ms")
    best = _best(peers, "latency_load_p99_ms", lambda a, b: a < b)
    if best is not None:
        beside.append(f"best peer at half its own drain rate: {best[0]} {best[1]:.2f} ms")
    measured = f"{verdict.measured} ({'; '.join(beside)})" if beside else verdict.measured
    return Verdict(verdict.goal, measured, verdict.target, verdict.met)


def goals_table(results: Results) -> list[str]:
    """The goals as Markdown lines (empty when Baton did not run)."""
    baton, _ = _ok(results)
    if baton is None:
        return []
    rows = verdicts(results)
    met = sum(1 for v in rows if v.met)
    lines = [f"## Goals of #20: {met} of {len(rows)} met", "",
             "| goal | measured | target | met |", "|---|---|---|---|"]
    for v in rows:
        verdict = "not measured" if v.met is None else ("yes" if v.met else "**no**")
        lines.append(f"| {v.goal} | {v.measured} | {v.target} | {verdict} |")
    return [*lines, ""]
