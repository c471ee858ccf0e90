"""Baton's actors: supervisor, intake, fetcher, leaser, executor, reporter, receiver, listener, observer,
scheduler, watchdog, api."""

from .executor import Executor
from .fetcher import Fetcher
from .intake import Intake
from .leaser import Leaser
from .listener import Listener
from .reporter import Reporter
from .supervisor import Supervisor

__all__ = ["Executor", "Fetcher", "Intake", "Leaser", "Listener", "Reporter", "Supervisor"]
