"""What a part of :class:`runtime.app.Baton` written as a mixin may use of the app (AppPart)."""

from __future__ import annotations

from typing import Any

from .keys import Keys
from .scripts import Scripts
from .settings import Settings

__all__ = ["AppPart"]


class AppPart:
    """The app's client, keys, settings and scripts, as the mixins of Baton see them (Baton
    provides them; a mixin holds no state of its own)."""

    keys: Keys
    settings: Settings

    @property
    def redis(self) -> Any:
        """The redis.asyncio client (the app's)."""
        raise NotImplementedError

    @property
    def scripts(self) -> Scripts:
        """The app's Lua script wrappers."""
        raise NotImplementedError
