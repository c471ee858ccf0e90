"""Run a peer's own command line on uvloop: ``python -m bench.peers.on_uvloop <console script> [args...]``.

Baton's worker runs on uvloop; so does taskiq's CLI when uvloop is installed.
arq's and saq's workers make their loop with ``asyncio.get_event_loop()`` /
``asyncio.new_event_loop()``, so with uvloop's event loop policy set first they
run on uvloop, with every option of their own CLI unchanged.
"""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import entry_points

import uvloop


def main() -> None:
    script, *args = sys.argv[1:]
    (entry,) = entry_points(group="console_scripts", name=script)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    sys.argv = [script, *args]
    sys.exit(entry.load()())


if __name__ == "__main__":
    main()
