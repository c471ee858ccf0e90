"""Fixtures of the Lua script tests: real server, per-test prefix, typed wrappers."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.keys import Keys
from runtime.scripts import Scripts
from runtime.settings import Settings
from tests.lua.support import Lua


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings with distinct, checkable retention TTLs."""
    return settings.with_changes(finished_ttl_s=600, dead_letter_ttl_s=1800, finished_cap=1000)


@pytest.fixture
def lua(redis: Any, settings: Settings) -> Lua:
    """Scripts bound to the test's prefix (one partition)."""
    keys = Keys(settings.prefix, 1)
    return Lua(redis=redis, settings=settings, keys=keys, scripts=Scripts(redis, keys, settings))
