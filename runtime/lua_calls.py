"""How a Lua operation reaches Redis: FCALL of its Redis Function, or EVALSHA of its script.

Each operation of runtime/lua/ is a library of one function (runtime/lua_source.py):
its includes run once, at FUNCTION LOAD, so a call costs Redis only the
operation itself. A call is sent on a held connection (direct_calls.DirectCalls);
a "Function not found" (a server that never had it: a new version, a restart
without persistence, a failover to a replica that never got it) loads the
library (on Redis Cluster onto the master of the call's slot alone) and calls
again. A server that refuses FUNCTION (Redis 6, an ACL without it) or
``redis_functions=false`` gets the same operations as scripts: EVALSHA,
reloaded on NOSCRIPT.

Libraries are named by their code's hash, so nodes of two versions never call
each other's; a node starting removes the Baton libraries of other versions
(``remove_other_versions``), so a server's functions do not grow with every
deploy, then loads this version's where they are missing (``load_missing``), so
its first calls do not each miss and load on the pickup path. A node of another
version still running (a rolling upgrade) finds its library gone and loads it
again on its next call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from .direct_calls import DirectCalls
from .errors import NotReplicated
from .lua_source import LIBRARY_PREFIX, Library, library, load_source
from .redis_faults import command_refused
from .settings import Settings

__all__ = [
    "NOT_ACKNOWLEDGED", "SCRIPT_NAMES", "LuaCalls", "durable_shortfall", "durable_wait", "functions_refused",
]

logger = logging.getLogger("baton.lua")

SCRIPT_NAMES = (
    "runs_create", "runs_claim", "leases_renew", "runs_finish", "leases_reap",
    "runs_promote", "indices_trim", "run_cancel", "run_replay", "run_update", "step_record", "checkpoint_add",
    "event_send",
    "scheduler_lease", "reconcile",
    "run_pause", "run_resume", "run_reschedule", "run_restart", "run_idem_reset", "run_debug", "run_append",
    "run_delete",
    "limits_apply", "run_watch", "webhook_claim",
    "signal_send", "state_set", "token_create", "token_settle", "message_take",
)

#: Scripts whose writes nobody is told about (configuration, not a run's fate): durable
#: writes do not wait for them, so a node starts and applies limits with its replicas down
NOT_ACKNOWLEDGED = frozenset({"limits_apply", "webhook_claim"})

def durable_wait(settings: Settings) -> tuple[Any, ...] | None:
    """The command that follows every script call under durable writes, or None when they are off:
    ``WAITAOF 1 N timeout`` with durable_fsync (the master's AOF and N replicas' have it), else
    ``WAIT N timeout`` (N replicas have it in memory)."""
    if settings.durable_fsync:
        return ("WAITAOF", 1, settings.durable_replicas, settings.durable_timeout_ms)
    if settings.durable_replicas:
        return ("WAIT", settings.durable_replicas, settings.durable_timeout_ms)
    return None


def durable_shortfall(settings: Settings, acked: Any) -> str:
    """What a durable wait's reply falls short of ('' when nothing)."""
    want, timeout_ms = settings.durable_replicas, settings.durable_timeout_ms
    if settings.durable_fsync:
        local, replicas = (int(v) for v in acked)
        if local < 1 or replicas < want:
            return (f"the write was fsynced on {local} of 1 master and {replicas} of {want} replica(s) within "
                    f"{timeout_ms} ms (durable_fsync)")
        return ""
    if int(acked) < want:
        return f"the write reached {int(acked)} of {want} replica(s) within {timeout_ms} ms (durable_replicas)"
    return ""



def functions_refused(exc: ResponseError) -> bool:
    """Whether an error says the server or the user's ACL has no Redis Functions (not that one failed)."""
    return command_refused(exc, "fcall", "function")


def _not_found(exc: ResponseError) -> bool:
    return str(exc).startswith("Function not found")


class LuaCalls:
    """Sends Baton's Lua operations to one Redis client, as functions while the server takes them."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        #: each operation's library as built so far: built on first use, since building all 31 takes
        #: ~130 ms and a producer's first trigger, which needs one, would wait for every one
        self._libraries: dict[str, Library] = {}
        #: False once the server refused functions (or they are turned off): scripts from then on
        self.functions = settings.redis_functions
        self._scripts: dict[str, Any] = {}
        self._direct = DirectCalls(redis)

    @property
    def libraries(self) -> dict[str, Library]:
        """Every operation's library (building the ones not used yet)."""
        for name in SCRIPT_NAMES:
            self.library(name)
        return self._libraries

    def library(self, name: str) -> Library:
        """Operation ``name``'s library, built on first use."""
        lib = self._libraries.get(name)
        if lib is None:
            lib = self._libraries[name] = library(name)
        return lib

    async def call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run operation ``name`` with these keys and arguments; its reply."""
        if self.functions:
            try:
                return await self._fcall(name, keys, args)
            except ResponseError as exc:
                if not functions_refused(exc):
                    raise
                self.functions = False
                logger.warning("the Redis server refuses Redis Functions (%s): running Baton's Lua as scripts "
                               "(EVALSHA), at ~20 us more Redis CPU per call", exc)
        return await self._evalsha(name, keys, args)

    async def _fcall(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        lib = self.library(name)
        for attempt in range(3):
            try:
                return await self._send(name, ("FCALL", lib.name), keys, args)
            except ResponseError as exc:
                # not there: load it (REPLACE: a node of this version may have loaded it since) and
                # call again; a third miss means something deletes it as fast as it is loaded
                if not _not_found(exc) or attempt == 2:
                    raise
                await self.redis.execute_command("FUNCTION LOAD", "REPLACE", lib.source, **self._only_on(keys))
        raise AssertionError("unreachable")

    async def _evalsha(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.redis.register_script(load_source(name))
        try:
            return await self._send(name, ("EVALSHA", script.sha), keys, args)
        except NoScriptError:  # a server that never loaded it: load it and call again
            script.sha = await self.redis.execute_command("SCRIPT LOAD", script.script, **self._only_on(keys))
            return await self._send(name, ("EVALSHA", script.sha), keys, args)

    def _only_on(self, keys: Sequence[str]) -> dict[str, Any]:
        """Where a load goes: on Redis Cluster, only to the master of the call's slot (the one that
        lacks it; the cluster client would send it to every master, and one master down would
        then keep every partition's calls from loading it); on one server, there."""
        if not self.settings.redis_cluster or not keys:
            return {}
        return {"target_nodes": self.redis.get_node_from_key(keys[0])}

    async def _send(self, name: str, command: tuple[str, str], keys: Sequence[str], args: Sequence[Any]) -> Any:
        wait = durable_wait(self.settings) if name not in NOT_ACKNOWLEDGED else None
        if wait is None:
            return await self._direct.execute(*command, len(keys), *keys, *args)
        # durable writes: nothing is acknowledged before the wait confirms it (every operation
        # is a write, and its caller acknowledges on its return)
        reply, acked = await self._direct.execute_durably(wait, *command, len(keys), *keys, *args)
        problem = durable_shortfall(self.settings, acked)
        if problem:
            raise NotReplicated(f"{name}: {problem}; it was not acknowledged", reply)
        return reply

    async def check_writable(self, key: str) -> None:
        """Whether durable writes to ``key``'s slot can be acknowledged now: NotReplicated when its master
        has fewer replicas attached than they need (a replica promoted with none of its own answers reads,
        and refuses every durable write), a Redis error when it does not answer. A read alone with
        durable writes off. (WAIT after no write of the connection's counts the replicas in step.)"""
        wait = durable_wait(self.settings)
        if wait is None:
            await self.redis.exists(key)
            return
        _, acked = await self._direct.execute_durably(wait, "EXISTS", key, key=key)
        problem = durable_shortfall(self.settings, acked)
        if problem:
            raise NotReplicated(f"probe: {problem}")

    async def remove_other_versions(self) -> list[str]:
        """Delete the Baton libraries on the server that are not this version's; their names.
        Nothing when functions are off or the server or ACL does not allow listing or deleting."""
        if not self.functions:
            return []
        ours = {lib.name for lib in self.libraries.values()}
        try:
            stale = sorted(await self.baton_libraries() - ours)
        except ResponseError as exc:
            logger.info("old Baton libraries not removed: FUNCTION LIST refused (%s)", exc)
            return []
        removed = []
        for stale_name in stale:
            try:
                await self.redis.function_delete(stale_name)
                removed.append(stale_name)
            except ResponseError as exc:  # gone meanwhile, or on some primaries only, or refused
                logger.info("Baton library %s not removed: %s", stale_name, exc)
        if removed:
            logger.info("removed the Baton libraries of other versions: %s", ", ".join(removed))
        return removed

    async def load_missing(self) -> list[str]:
        """Load the libraries of this version that the server lacks (every primary's, on Redis Cluster),
        so that a node's first calls after a deploy do not each miss, load and call again: on the
        pickup path that is a round trip and the load (runs_create's takes Redis ~4 ms). The names
        loaded; nothing when functions are off, and what was loaded so far when the server or ACL
        refuses (each call then loads what it misses, as it always does)."""
        if not self.functions:
            return []
        servers: list[dict[str, Any]] = [{}]
        if self.settings.redis_cluster:
            await self.redis.initialize()  # (a fresh client knows no node yet)
            servers = [{"target_nodes": node} for node in self.redis.get_primaries()]
        loaded = []
        try:
            for target in servers:
                listed = await self.redis.execute_command("FUNCTION LIST", "LIBRARYNAME", f"{LIBRARY_PREFIX}*",
                                                          **target)
                have = {_library_name(entry) for entry in _entries(listed)}
                for lib in self.libraries.values():
                    if lib.name not in have:
                        await self.redis.execute_command("FUNCTION LOAD", "REPLACE", lib.source, **target)
                        loaded.append(lib.name)
        except ResponseError as exc:
            logger.info("Baton's libraries not loaded ahead of their first calls (%s): each call loads its own", exc)
        return loaded

    async def baton_libraries(self) -> set[str]:
        """The names of the Baton libraries on the server (every primary's, on a cluster)."""
        listed = await self.redis.function_list(library=f"{LIBRARY_PREFIX}*")
        names = {_library_name(entry) for entry in _entries(listed)}
        # LIBRARYNAME is a glob to the server; checking the prefix here as well keeps a server
        # that ignores the option from handing us other applications' libraries to delete
        return {name for name in names if name.startswith(LIBRARY_PREFIX)}


def _entries(listed: Any) -> list[Any]:
    """The library entries of a FUNCTION LIST reply: one server's list, or a cluster client's lists
    keyed by node name (one per primary, or the one node it was sent to), joined."""
    if isinstance(listed, dict) and b"library_name" not in listed and "library_name" not in listed:
        return [entry for libraries in listed.values() for entry in libraries]
    return list(listed)


def _library_name(entry: Any) -> str:
    """The library name in one FUNCTION LIST entry (RESP2: a flat name/value list; RESP3: a map)."""
    if isinstance(entry, dict):
        value = entry.get(b"library_name", entry.get("library_name", b""))
    else:
        fields = list(entry)
        value = next((fields[i + 1] for i in range(0, len(fields) - 1, 2)
                      if fields[i] in (b"library_name", "library_name")), b"")
    return value.decode() if isinstance(value, bytes) else str(value)
