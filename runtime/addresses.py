"""Lists of ``host:port`` in a Redis URL's host part: a Sentinel URL's sentinels
(``redis+sentinel://h1:26379,h2:26379/mymaster``) and a Redis Cluster's entry points
(``redis://h1:7000,h2:7000``, with BATON_REDIS_CLUSTER). One parser serves both."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from .codec import digits

__all__ = ["first_host_url", "host_ports"]


def host_ports(netloc: str, what: str, example: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` pairs of a URL's netloc (credentials before ``@`` are skipped).

    ValueError says which part is wrong, naming ``what`` ("each sentinel") and showing
    ``example``, never the URL itself (it may hold a password).
    """
    pairs: list[tuple[str, int]] = []
    for item in netloc.rpartition("@")[2].split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not digits(port) or not 1 <= int(port) <= 65535:
            raise ValueError(f"{what} must be host:port with a port between 1 and 65535 ({example})")
        pairs.append((host.strip("[]"), int(port)))
    return pairs


def first_host_url(url: str) -> str:
    """The URL with only the first of the hosts its host part lists (credentials, path and query kept)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{hosts.split(',')[0]}"))
