"""Every setting is a documented flag; flags reach the app the worker runs (issue 13's settings bug)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from runtime import Baton, Settings
from runtime.cli import build_parser, settings_from
from runtime.settings import descriptions
from tests.integration.test_processes import producer, worker_env
from tests.nodes import eventually, spawn_worker, stop_process


def test_every_setting_is_a_flag_in_help_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the worker's --help
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    described = descriptions()
    for f in fields(Settings):
        # Then each field is there as a flag, with the first words of its description and its variable
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        assert " ".join(described[f.name].split()[:4]) in text, f.name
        assert f"BATON_{f.name.upper()}" in text, f.name
        if f.type == "bool":
            assert "--no-" + f.name.replace("_", "-") in text, f.name


def test_a_boolean_that_defaults_to_true_can_be_turned_off_by_a_flag() -> None:
    assert Settings().handoff is True
    ns = build_parser().parse_args(["worker", "--no-handoff"])
    assert settings_from(ns).handoff is False
    # and no flag leaves the environment's (or the default) value
    assert settings_from(build_parser().parse_args(["worker"])).handoff is True


def test_configure_derives_keys_and_specs_from_the_new_settings() -> None:
    app = Baton(Settings(prefix="before", partitions=1))
    app.configure(app.settings.with_changes(prefix="after", partitions=4))
    assert len(app.keys.partitions) == 4 and all("after" in p.prefix for p in app.keys.partitions)
    assert app.plain_specs.settings.prefix == "after"


async def test_worker_flags_reach_the_app_it_runs(settings: Settings, redis: Any, tmp_path: Path) -> None:
    # Given a worker started with --prefix and --partitions flags (its environment says otherwise)
    flagged = settings.with_changes(prefix=settings.prefix + "x", partitions=4)
    log = tmp_path / "w.log"
    proc = spawn_worker("tests.apps:app", worker_env(settings, "F"), log,
                        args=("--prefix", flagged.prefix, "--partitions", "4"))
    app = producer(flagged)
    try:
        await eventually(lambda: "4 partition(s)" in log.read_text(), 20)
        # When a run is submitted to the flagged prefix, spread over 4 partitions
        ids = [await app.trigger("noop", {"i": i}) for i in range(8)]
        runs = [await app.wait_for(run_id, 20) for run_id in ids]
    finally:
        code = stop_process(proc)
        await app.close()
    # Then the worker ran them: it serves the prefix and partitions its flags named
    assert {r.status for r in runs} == {"completed"}
    assert len({app.keys.partition_of_run(r.id).index for r in runs}) > 1
    assert code == 0, log.read_text()[-2000:]
