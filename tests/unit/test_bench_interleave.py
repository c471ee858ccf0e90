"""Interleaved repetitions: a system's per-repetition results merge into one, as if measured in one driver run."""

from __future__ import annotations

from typing import Any

from bench.common import summarize
from bench.interleave import ONCE_PHASES, merge_reps, rep_config


def rep(drain: float, p99: float, seconds: float, load: float, **extra: Any) -> dict[str, Any]:
    return {
        "system": "baton", "versions": {"baton": "1"}, "notes": {"one": "x"}, "seconds": seconds,
        "other_load_cores": load, "errors": extra.pop("errors", {}),
        "metrics": {"drain": {**summarize([drain]), "capped": extra.pop("capped", False), "processes": 1},
                    "latency_p99_ms": {**summarize([p99]), "n": 1}, **extra.pop("metrics", {})},
        "raw": {"drain": [{"rate": drain}], "commands_per_run": {"fcall": drain / 1e5}},
    }


def test_repetitions_merge_their_values_notes_raw_lists_and_time() -> None:
    # Given three repetitions of one system, the first with the once-only memory figure and one capped drain
    parts = [rep(10.0, 2.0, 10, 0.0, metrics={"memory_per_run": summarize([590.0])}),
             rep(30.0, 1.0, 20, 0.3, capped=True, errors={"latency_load": "n/a: x"}),
             rep(20.0, 3.0, 30, 0.0, errors={"latency_load": "n/a: y"})]
    merged = merge_reps(parts)
    # Then each metric is summarized over every repetition's values, keeping its notes
    assert merged["metrics"]["drain"]["values"] == [10.0, 30.0, 20.0]
    assert (merged["metrics"]["drain"]["median"], merged["metrics"]["drain"]["min"]) == (20.0, 10.0)
    assert merged["metrics"]["drain"]["capped"] is True and merged["metrics"]["drain"]["processes"] == 1
    assert merged["metrics"]["latency_p99_ms"]["median"] == 2.0 and merged["metrics"]["latency_p99_ms"]["n"] == 3
    # And a figure of one repetition stays as it was
    assert merged["metrics"]["memory_per_run"]["values"] == [590.0]
    # And raw lists add up, other raw entries come from the last repetition, errors from the first
    assert merged["raw"]["drain"] == [{"rate": 10.0}, {"rate": 30.0}, {"rate": 20.0}]
    assert merged["raw"]["commands_per_run"] == {"fcall": 20.0 / 1e5}
    assert merged["errors"] == {"latency_load": "n/a: x"}
    # And time adds up, the other load is weighted by it
    assert merged["seconds"] == 60.0 and merged["other_load_cores"] == round(0.3 * 20 / 60, 2)


def test_a_note_listed_per_round_is_every_repetitions() -> None:
    # Given three repetitions of the loaded pickup, each noting its load and the backlog its round left
    def loaded(p99: float, rate: float, backlog: list[int]) -> dict[str, Any]:
        return rep(1.0, 1.0, 10, 0.0, metrics={"latency_load_p99_ms": {
            **summarize([p99]), "load_target": 5000.0, "load_rate": rate, "load_backlog": backlog}})
    merged = merge_reps([loaded(3.0, 4990.0, [4]), loaded(300.0, 5001.0, [2310]), loaded(4.0, 4995.0, [0])])
    # Then the per-round list holds every repetition's entries in order; a single note is the first's
    load = merged["metrics"]["latency_load_p99_ms"]
    assert load["load_backlog"] == [4, 2310, 0]
    assert (load["load_rate"], load["load_target"], load["median"]) == (4990.0, 5000.0, 4.0)


def test_a_failed_repetition_fails_the_system_and_names_it() -> None:
    merged = merge_reps([rep(10.0, 2.0, 10, 0.0), {"system": "baton", "failed": "driver exited 1"}])
    assert merged["failed"] == "repetition 2: driver exited 1"


def test_only_the_first_repetition_runs_the_once_only_phases() -> None:
    cfg = {"reps": 3, "phases": None}
    assert rep_config(cfg, 0) == {"reps": 1, "phases": None, "skip_phases": []}
    assert rep_config(cfg, 2)["skip_phases"] == list(ONCE_PHASES) and cfg["reps"] == 3
