"""The Dockerfile: hadolint clean, multi-stage, installs exactly the lock file, labelled, non-root, with a
health check (no Docker engine here: its build steps are the ones this checks, and the lock is checked whole)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from tests.deploy.test_manifests import tool

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"


def _pins() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of every package in the lock file."""
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=[a-z0-9])", LOCK.read_text()):
        m = re.match(r"([a-z0-9][a-z0-9._-]*)==([^\s;\\]+)", block)
        if m:
            pins[m.group(1).replace("_", "-")] = (m.group(2), block.count("--hash=sha256:"))
    return pins


def test_hadolint_passes() -> None:
    # When hadolint lints the Dockerfile, then it reports nothing
    out = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_the_image_is_multi_stage_locked_labelled_non_root_and_health_checked() -> None:
    text = DOCKERFILE.read_text()
    # Then a build stage and a runtime stage from one base image argument
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, re.M)
    assert stages == [("${PYTHON_IMAGE}", "build"), ("${PYTHON_IMAGE}", "")]
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm$", text, re.M)
    # and the dependencies come from the lock file, hash-checked, the project without an unpinned build env
    assert "pip install --require-hashes --no-deps -r requirements.lock" in text
    assert "pip install --no-deps --no-build-isolation ." in text
    assert "COPY --from=build /opt/baton /opt/baton" in text
    # and the OCI labels, a numeric non-root user, and a health check on the liveness probe
    for label in ("title", "description", "version", "revision", "created", "licenses", "base.name"):
        assert f"org.opencontainers.image.{label}=" in text, label
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/livez", text, re.M)


def test_the_lock_pins_every_dependency_and_the_build_backend_with_hashes() -> None:
    # Given the project's dependencies and build requirements, and the lock file
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [Requirement(r) for r in (*project["project"]["dependencies"], *project["build-system"]["requires"])]
    pins = _pins()
    # Then each is pinned to a version its specifier allows, with hashes (pip's --require-hashes mode)
    for req in wanted:
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock: regenerate it (see its header)"
        version, hashes = pins[name]
        assert req.specifier.contains(version), (name, version, str(req.specifier))
        assert hashes >= 1, name
    # and every package of the lock has hashes (a transitive one without would fail the whole install)
    assert all(hashes >= 1 for _, hashes in pins.values()), pins
    assert "hiredis" in pins  # the redis[hiredis] extra is locked too
