"""Nodes as an operator sees them: heartbeat, slots, leases, version; and drain requests.

Each node's supervisor writes its heartbeat record (``{prefix}:node:<id>``, a
hash that expires after two lease TTLs) every ``renew_interval_ms`` and keeps
its id in the ``nodes`` index (scored by the last heartbeat, Redis clock; ids
silent for an hour are pruned). A drain request is a key the node's heartbeat
reads: the node then drains as on SIGTERM (stops taking work, lets running
handlers finish within ``shutdown_grace_s``, gives back the rest) and exits.
"""

from __future__ import annotations

from typing import Any

from .affinity import stored_labels
from .app import Baton
from .codec import text
from .connection import server_ms
from .records import iso, stored_int

__all__ = ["DRAIN_REQUEST_TTL_MS", "list_nodes", "node_record", "request_drain"]

#: how long a drain request waits for its node's next heartbeat (a node that is gone never reads it)
DRAIN_REQUEST_TTL_MS = 3_600_000


def node_record(raw: dict[Any, Any], node_id: str, seen_ms: int, now_ms: int, live_window_ms: int,
                drain_requested: bool) -> dict[str, Any]:
    """One node's JSON shape from its heartbeat record (empty once it expired) and its index score."""
    f = {text(k): text(v) for k, v in raw.items()}
    heartbeat = stored_int(f.get("heartbeat_at")) or seen_ms
    age = max(now_ms - heartbeat, 0)
    return {
        "id": node_id, "alive": bool(f) and age <= live_window_ms, "heartbeat_at": iso(heartbeat),
        "heartbeat_age_ms": age, "version": f.get("version") or None,
        "slots_total": stored_int(f.get("slots")) or 0, "slots_used": stored_int(f.get("busy")),
        "leases_held": stored_int(f.get("leases")),
        "jobs": [j for j in f.get("jobs", "").split(",") if j],
        "queues": [q for q in f.get("queues", "").split(",") if q],
        "draining": f.get("draining") == "1", "drain_requested": drain_requested,
        "labels": stored_labels(f.get("labels")),
    }


async def list_nodes(app: Baton) -> list[dict[str, Any]]:
    """Nodes that heartbeated within the last hour, most recent first; ``alive`` when within two lease
    TTLs (as ``baton_nodes_live`` counts them)."""
    keys = app.keys
    now = await server_ms(app.redis)
    rows = await app.redis.zrevrange(keys.nodes, 0, -1, withscores=True)
    ids = [(text(member), int(score)) for member, score in rows]
    pipe = app.redis.pipeline(transaction=False)
    for node_id, _ in ids:
        pipe.hgetall(keys.node(node_id))
        pipe.exists(keys.drain_request(node_id))
    res = await pipe.execute()
    window = 2 * app.settings.lease_ttl_ms
    return [node_record(res[2 * i], node_id, seen, now, window, bool(res[2 * i + 1]))
            for i, (node_id, seen) in enumerate(ids)]


async def request_drain(app: Baton, node_id: str) -> dict[str, Any] | None:
    """Ask a live node to drain and exit; returns the node (None when no live node has this id). The node
    acts on it at its next heartbeat (within ``renew_interval_ms``)."""
    for node in await list_nodes(app):
        if node["id"] == node_id and node["alive"]:
            await app.redis.set(app.keys.drain_request(node_id), "1", px=DRAIN_REQUEST_TTL_MS)
            return {**node, "drain_requested": True}
    return None
