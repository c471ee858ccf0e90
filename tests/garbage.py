"""Finding Baton's objects among what Python's cyclic collector frees (tests of reference cycles)."""

from __future__ import annotations

import gc
import types
from collections import Counter
from collections.abc import Iterable

#: packages whose objects must not be left in reference cycles
OURS = ("runtime", "actors")


def _ours(obj: object) -> str | None:
    """What the object is, when it is one of Baton's (its class's module, or a function's)."""
    is_function = hasattr(obj, "__code__")
    module = getattr(obj, "__module__", None) if is_function else type(obj).__module__
    if isinstance(module, str) and module.split(".")[0] in OURS:
        name = getattr(obj, "__qualname__", "?") if is_function else type(obj).__qualname__
        return f"{module}.{name}"
    return None


def ours(garbage: Iterable[object]) -> Counter[str]:
    """Baton's objects among ``garbage``, counted by what they are."""
    return Counter(name for name in map(_ours, garbage) if name)


def alive_ours() -> list[object]:
    """Baton's objects (instances of its classes, its functions) alive now. Read by their type alone:
    an attribute lookup on whatever the collector tracks may run code (a lazy module imports)."""
    def ours_by_type(obj: object) -> bool:
        module = obj.__module__ if isinstance(obj, types.FunctionType) else type(obj).__dict__.get("__module__")
        return isinstance(module, str) and module.split(".")[0] in OURS

    return [obj for obj in gc.get_objects() if ours_by_type(obj)]
