"""The README's generated blocks: tables whose one source is in the code.

Each block sits between ``<!-- name -->`` and ``<!-- /name -->`` in README.md;
``python -m runtime.readme`` rewrites them, and tests fail when one is stale.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from .key_schema import layout_markdown
from .ranges import ranges_markdown

__all__ = ["BLOCKS", "README", "block", "rewrite"]

README = Path(__file__).resolve().parents[1] / "README.md"

#: block name -> the function generating its text
BLOCKS: dict[str, Callable[[], str]] = {"ranges": ranges_markdown, "redis-layout": layout_markdown}


def block(text: str, name: str) -> str | None:
    """The current text of one block of a README, or None when its markers are missing."""
    found = re.search(rf"<!-- {name} -->\n(.*?)\n<!-- /{name} -->", text, re.S)
    return found.group(1) if found else None


def rewrite(text: str) -> str:
    """The README with every block regenerated."""
    for name, generate in BLOCKS.items():
        if block(text, name) is None:
            raise ValueError(f"README has no <!-- {name} --> block")
        start, end = f"<!-- {name} -->\n", f"\n<!-- /{name} -->"
        head, rest = text.split(start, 1)
        text = head + start + generate() + end + rest.split(end, 1)[1]
    return text


if __name__ == "__main__":
    README.write_text(rewrite(README.read_text()))
    print(f"rewrote {', '.join(BLOCKS)} in {README}")
