"""The run context handed to every handler."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """What a handler knows about the run it executes.

    ``attempt`` counts leases from 1; ``log`` is a logger whose records carry the
    run id, job and attempt.
    """

    run_id: str
    job: str
    attempt: int
    node_id: str
    log: logging.LoggerAdapter[logging.Logger] = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict)
