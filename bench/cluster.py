"""Assemble a Redis Cluster from running servers with CLUSTER commands only (no redis-cli).

Used by the tests' cluster fixture and by the scale-out benchmark. The slot
layout is explicit so a caller can decide which master owns which hash tag
(``slot_layout``): the benchmark spreads Baton's partitions evenly over the
masters, which ``ADDSLOTSRANGE`` in equal ranges does not do for 6 partitions.
Only the standard library and redis-py are imported (the benchmark's venv).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import redis
from redis.crc import key_slot

__all__ = ["SLOTS", "Node", "assemble", "keyslot", "slot_layout"]

#: hash slots of a Redis Cluster
SLOTS = 16384

#: (client port, cluster bus port) of one server started with --cluster-enabled yes
Node = tuple[int, int]


def keyslot(key: str) -> int:
    """The hash slot of a key (its ``{tag}`` when it has one), as CLUSTER KEYSLOT answers."""
    return int(key_slot(key.encode()))


def slot_layout(masters: int, tags: Sequence[str] = ()) -> list[list[int]]:
    """Slots per master: equal contiguous ranges, then the slot of ``tags[i]`` moved to master
    ``i % masters``, so the keys of tag i live on that master whatever the tags hash to."""
    owner = [min(slot * masters // SLOTS, masters - 1) for slot in range(SLOTS)]
    for i, tag in enumerate(tags):
        owner[keyslot("{" + tag + "}")] = i % masters
    layout: list[list[int]] = [[] for _ in range(masters)]
    for slot, m in enumerate(owner):
        layout[m].append(slot)
    return layout


def _ranges(slots: Sequence[int]) -> list[int]:
    """ADDSLOTSRANGE arguments (start, end, start, end ...) for a sorted list of slots."""
    args: list[int] = []
    for slot in slots:
        if args and args[-1] == slot - 1:
            args[-1] = slot
        else:
            args += [slot, slot]
    return args


def _info(client: redis.Redis) -> str:
    reply = client.execute_command("CLUSTER", "INFO")
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def assemble(masters: Sequence[Node], replicas: Sequence[Node] = (), layout: list[list[int]] | None = None,
             timeout_s: float = 30.0) -> None:
    """Give ``masters`` their slots (``layout``, default equal ranges), join every node, make
    replica j follow master ``j % len(masters)``, and wait until the cluster is ok everywhere
    and every replica's link is up (so a replica that says it follows has the data)."""
    layout = layout or slot_layout(len(masters))
    nodes = [*masters, *replicas]
    clients = [redis.Redis(port=port) for port, _bus in nodes]
    deadline = time.monotonic() + timeout_s
    try:
        for client, slots in zip(clients, layout, strict=False):
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", *_ranges(slots))
        for port, bus in nodes[1:]:
            # the bus port is not port+10000 here, so MEET must name it
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
        _until(lambda: all(f"cluster_known_nodes:{len(nodes)}" in _info(c) for c in clients), deadline,
               "the nodes did not all meet")
        ids = [c.execute_command("CLUSTER", "MYID") for c in clients[:len(masters)]]
        for j, client in enumerate(clients[len(masters):]):
            master_id = ids[j % len(masters)]
            _until(lambda c=client, m=master_id: _try_replicate(c, m), deadline, "a replica could not follow")
        _until(lambda: all("cluster_state:ok" in _info(c) for c in clients), deadline, "cluster state not ok")
        _until(lambda: all(c.info("replication").get("master_link_status") == "up"
                           for c in clients[len(masters):]), deadline, "a replica did not sync")
    finally:
        for client in clients:
            client.close()


def _try_replicate(client: redis.Redis, master_id: bytes) -> bool:
    """CLUSTER REPLICATE, which fails until this node has heard of the master through the bus."""
    try:
        client.execute_command("CLUSTER", "REPLICATE", master_id)
    except redis.exceptions.ResponseError:
        return False
    return True


def _until(check: Callable[[], object], deadline: float, what: str) -> None:
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(what)
        time.sleep(0.05)
