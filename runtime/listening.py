"""The TCP ports a process serves on, bound when it starts: a port it cannot have stops it at once.

A worker or ``baton api`` binds its API port before it starts any work, next to the metrics port
(runtime/worker.py): a port in use then says so in one line with exit code 2, instead of a node
that runs for a while and then fails as its API actor gives up. The sockets stay the process's
for as long as it runs, so a restarted API actor serves on them again and no other process can
take the port in between.
"""

from __future__ import annotations

import socket

from .errors import ConfigError
from .setting_rules import setting_names

__all__ = ["cannot_serve", "listening_sockets"]

#: connections waiting to be accepted (aiohttp's own default)
BACKLOG = 128


def cannot_serve(what: str, setting: str, host: str, port: int, exc: OSError) -> ConfigError:
    """The error of an address this process cannot serve ``what`` on, naming the ``<setting>_host`` and
    ``<setting>_port`` settings that chose it."""
    return ConfigError(f"cannot serve {what} on {host}:{port} ({setting_names(setting + '_host')}, "
                       f"{setting_names(setting + '_port')}): {exc.strerror or exc}")


def listening_sockets(what: str, setting: str, host: str, port: int) -> list[socket.socket]:
    """Sockets listening on ``host:port``: one per address the host resolves to, as asyncio's
    create_server binds them (IPv6 ones IPv6-only, so a host with both families gets both).
    Raises ConfigError (see ``cannot_serve``) when any of them cannot be bound."""
    sockets: list[socket.socket] = []
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(addresses):  # (in order, once each)
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError as exc:  # in use, not ours to bind, or a host that names no address here
        for sock in sockets:
            sock.close()
        raise cannot_serve(what, setting, host, port, exc) from exc
    return sockets
