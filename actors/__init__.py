"""Baton's actors: supervisor, intake, leaser, executor, reporter, listener."""

from .executor import Executor
from .intake import Intake
from .leaser import Leaser
from .listener import Listener
from .reporter import Reporter
from .supervisor import Supervisor

__all__ = ["Executor", "Intake", "Leaser", "Listener", "Reporter", "Supervisor"]
