"""Baton's HTTP API: runs, jobs, triggers, events, SSE streams, OpenAPI, health and metrics.

``create_app(baton)`` builds the aiohttp application; the ``Api`` actor
(actors/api.py) serves it inside a node, and ``baton api`` serves it alone.
"""

from .auth import ApiKeys, hash_key, new_key
from .server import ApiMetrics, create_app

__all__ = ["ApiKeys", "ApiMetrics", "create_app", "hash_key", "new_key"]
