"""The benchmark report's goals table is computed from the run's results, peers picked by rule."""

from __future__ import annotations

from typing import Any

from bench.goals import goals_table, verdicts
from bench.main import QUICK
from bench.report import render


def metric(value: float, **extra: Any) -> dict[str, Any]:
    return {"median": value, "min": value, "max": value, "n": 1, **extra}


def system(name: str, **metrics: dict[str, Any]) -> dict[str, Any]:
    notes = {"one": "one()", "in_flight": "gather", "bulk": None, "worker": f"{name} worker", "completion": "count"}
    return {"system": name, "metrics": metrics, "errors": {}, "raw": {}, "notes": notes, "versions": {name: "1.0"}}


def results(baton_drain: float = 9000.0, xadd_p99: float = 0.8) -> list[dict[str, Any]]:
    return [
        system("baton", drain=metric(baton_drain, processes=1), latency_p50_ms=metric(0.40),
               latency_p99_ms=metric(0.70), latency_xadd_p50_ms=metric(0.45), latency_xadd_p99_ms=metric(xadd_p99),
               redis_cpu_per_10k=metric(0.35), calls_per_run=metric(14.0), memory_per_run=metric(650.0),
               latency_load_p99_ms=metric(1.5)),
        system("taskiq", drain=metric(3000.0, processes=1), latency_p50_ms=metric(0.50),
               latency_p99_ms=metric(0.95)),
        system("huey", drain=metric(2500.0, processes=1), latency_p50_ms=metric(0.45),
               latency_p99_ms=metric(1.20)),
        # faster than every single-process peer, but it is two processes: not the 3x reference
        system("dramatiq-default", drain=metric(4000.0, processes=2), latency_p50_ms=metric(5.0),
               latency_p99_ms=metric(700.0)),
        {"system": "celery", "failed": "install failed"},
    ]


def meta() -> dict[str, Any]:
    """A run's description, as bench/main.py writes it."""
    return {"command": "bench/run --quick", "started": "2026-12-02T13:00:00+00:00", "duration_s": 60, "quick": True,
            "git": {"head": "abc1234", "subject": "s", "engine_uncommitted": []}, "redis_server": "Redis 7",
            "machine": {"nproc": 2, "cpu": "cpu", "ram_gib": 24, "os": "Linux"}, "config": QUICK}


def by_goal(rs: list[dict[str, Any]]) -> dict[str, Any]:
    return {v.goal: v for v in verdicts(rs)}


def test_each_goal_is_judged_against_the_right_reference() -> None:
    v = by_goal(results())
    drain = v["drain, 1 process at default settings, vs the fastest single-process peer"]
    assert drain.met is True and "taskiq 3,000" in drain.measured and drain.measured.startswith("3.00×")
    assert v["drain, 1 process, vs dramatiq's default worker (one process per CPU)"].met is True
    # best peer p50 is huey's 0.45, best p99 taskiq's 0.95 (target 0.855)
    assert v["pickup p50, submitted by a plain client's XADD to the stream"].met is True
    assert v["pickup p99, submitted by a plain client's XADD to the stream"].met is True
    assert v["pickup p50, submitted with app.trigger"].met is True
    assert v["Redis CPU per run, drain"].measured == "35 µs"
    assert v["Redis memory per queued run, 100-byte input"].met is False
    assert v["pickup p99 of a new run, node draining at half its capacity"].met is True


def test_missed_and_unmeasured_goals_are_reported_as_such() -> None:
    rs = results(baton_drain=8000.0, xadd_p99=0.9)
    del rs[0]["metrics"]["calls_per_run"]
    v = by_goal(rs)
    assert v["drain, 1 process at default settings, vs the fastest single-process peer"].met is False
    assert v["pickup p99, submitted by a plain client's XADD to the stream"].met is False
    commands = v["Redis commands per run, drain (INFO commandstats, Lua-internal included)"]
    assert commands.met is None and commands.measured == "not measured"
    table = "\n".join(goals_table(rs))
    assert table.startswith("## Goals of #20: 6 of 10 met")
    assert "| not measured |" in table and "| **no** |" in table


def test_no_goals_without_baton() -> None:
    assert goals_table([r for r in results() if r["system"] != "baton"]) == []


def test_the_report_opens_with_the_goals_and_labels_multi_process_rows() -> None:
    text = render(meta(), results())
    assert text.index("## Goals of #20") < text.index("| system | enqueue")
    assert "| dramatiq-default (2 processes) |" in text
    assert "pickup p99 under load" not in text.split("## Systems")[0].split("| system |", 1)[1]
    assert "| celery | failed |" in text


def test_the_memory_phase_namespace_is_as_long_as_batons_default_prefix() -> None:
    # the memory per run counts key names: every system is measured with a namespace of the length
    # users of Baton get by default (the driver cannot import Baton in the peers' environments)
    from bench.driver import MEMORY_NS_LEN
    from runtime.settings import Settings

    assert len(Settings().prefix) == MEMORY_NS_LEN


def test_the_stream_path_goals_show_the_floor_of_its_shape() -> None:
    rs = results()
    floors = {f"floor_{shape}_{q}_ms": metric(v) for shape, q, v in (
        ("list", "p50", 0.20), ("list", "p95", 0.30), ("list", "p99", 0.40), ("stream", "p50", 0.21),
        ("stream", "p95", 0.31), ("stream", "p99", 0.41), ("stream_write", "p50", 0.42),
        ("stream_write", "p95", 0.52), ("stream_write", "p99", 0.62))}
    rs[0]["metrics"].update(floors)
    v = by_goal(rs)
    xadd = v["pickup p50, submitted by a plain client's XADD to the stream"]
    assert xadd.measured == "0.45 ms (best peer huey 0.45 ms; the path's shape with no job system: 0.42 ms)"
    assert "no job system: 0.62 ms" in v["pickup p99, submitted by a plain client's XADD to the stream"].measured
    # the trigger path has no floor beside it (its shape is the peers')
    assert "no job system" not in v["pickup p50, submitted with app.trigger"].measured
    text = render(meta(), rs)
    row = next(line for line in text.splitlines() if line.startswith("| XADD, XREADGROUP, then one script call"))
    assert row.endswith("| 4 | 0.42 | 0.52 | 0.62 |")


def test_floors_are_left_out_of_the_report_when_not_measured() -> None:
    assert "no job system" not in render(meta(), results())


def test_the_loaded_goal_shows_a_pings_round_trip_under_the_same_load() -> None:
    goal = "pickup p99 of a new run, node draining at half its capacity"
    assert by_goal(results())[goal].measured == "1.50 ms"  # (no PING measured: the figure alone)
    rs = results()
    rs[0]["metrics"]["latency_load_p99_ms"] = metric(30.0, load_target=12000.0, load_rate=11900.0)
    rs[0]["metrics"].update(latency_load_ping_p50_ms=metric(0.3), latency_load_ping_p99_ms=metric(8.1))
    v = by_goal(rs)[goal]
    assert v.met is False and v.measured == "30.00 ms (a PING to the same server meanwhile: p99 8.10 ms)"
    text = render(meta(), rs)
    assert "A PING sent after each probe" in text and "p99 8.1" in text.split("Background load:")[1]


def test_the_loaded_goal_shows_the_best_peer_under_its_own_half_load() -> None:
    goal = "pickup p99 of a new run, node draining at half its capacity"
    rs = results()
    rs[0]["metrics"].update(latency_load_ping_p99_ms=metric(8.1))
    rs[1]["metrics"]["latency_load_p99_ms"] = metric(14.3)
    rs[2]["metrics"]["latency_load_p99_ms"] = metric(6.6)
    v = by_goal(rs)[goal]
    assert v.met is True and v.measured == ("1.50 ms (a PING to the same server meanwhile: p99 8.10 ms; "
                                            "best peer at half its own drain rate: huey 6.60 ms)")
