"""What the README names is importable from ``runtime``, and jobs take their backoff in one form."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import runtime
from runtime import Backoff, Baton, ConfigError, cron, errors, jobs

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_class_the_readme_names_is_importable_from_runtime() -> None:
    # Given the classes of the modules users meet (errors, schedules, job options)
    classes = {name for module in (errors, cron, jobs) for name, obj in vars(module).items()
               if inspect.isclass(obj) and obj.__module__ == module.__name__ and not name.startswith("_")}
    # When the README names one of them in code
    named = set(re.findall(r"\b([A-Z][A-Za-z]+)\b", README.read_text())) & classes
    assert {"ChildRunFailed", "WaitTimeout", "NonDeterminism", "DuplicateStep", "CronSchedule"} <= named
    # Then `from runtime import <it>` works
    missing = sorted(name for name in named if not hasattr(runtime, name) or name not in runtime.__all__)
    assert missing == [], f"README names {missing}, not importable from runtime"


def test_every_exception_is_exported() -> None:
    exceptions = {name for name, obj in vars(errors).items()
                  if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__}
    assert exceptions <= set(runtime.__all__)


def test_a_job_takes_its_backoff_as_a_backoff_only() -> None:
    app = Baton()

    @app.job(backoff=Backoff("fixed", initial_s=0.5, jitter=0))
    async def fine(ctx: object, payload: object) -> None:
        return None

    job = app.jobs.get("fine")
    assert job is not None and job.options.backoff == Backoff("fixed", 0.5, 300.0, 0)
    with pytest.raises(ConfigError, match="backoff must be a Backoff"):
        app.job(backoff="fixed")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        app.job(backoff_initial=1)  # type: ignore[call-arg]
