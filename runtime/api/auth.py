"""API keys: bearer tokens, each scoped to one project, stored only as SHA-256 hashes.

``BATON_API_KEYS`` holds ``project:sha256hex`` entries separated by commas (make
one with ``baton apikey PROJECT``). A presented key is hashed and compared with
every stored hash in constant time (``hmac.compare_digest``, no early exit), so
neither timing nor the settings reveal a key; keys are never logged.

``BATON_API_DEV_KEY`` is a plaintext key for project ``default``, for local
development only (``./dev up`` sets it to ``auto``: a fresh key is generated
and printed once in the log).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

from ..errors import ConfigError
from ..settings import Settings

__all__ = ["PROJECT_RE", "ApiKeys", "hash_key", "header_bytes", "new_key"]

#: Project (tenant) names: they become part of Redis key names.
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, hex (keys are random, so no salt or slow hash is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new random API key (192 bits)."""
    return "bk_" + secrets.token_urlsafe(24)


def new_hatchet_token(tenant: str, server_url: str) -> str:
    """A new random API key shaped as the token hatchet-sdk wants: an unsigned JWT naming the tenant (``sub``)
    and the API's URL (``server_url``; the SDK also wants a gRPC address, which Baton does not serve). Baton
    only hashes it, like any key: its 192 random bits (``jti``) make it one nobody can derive from the
    tenant and URL, which anyone may know."""
    def part(claims: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")

    claims = {"sub": tenant, "server_url": server_url, "grpc_broadcast_address": "unused:443",
              "jti": secrets.token_urlsafe(24)}
    return ".".join([part({"alg": "none", "typ": "JWT"}), part(claims), "unsigned"])


def header_bytes(value: str) -> bytes:
    """The bytes a client sent as a header's value. aiohttp decodes them as UTF-8 with surrogateescape,
    so a value that is not UTF-8 holds lone surrogates, which a plain ``encode()`` refuses: compared as
    bytes it is just a value that matches nothing (401, 403), never a 500."""
    return value.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class ApiKeys:
    """The accepted key hashes and the project each one is scoped to."""

    entries: tuple[tuple[bytes, str], ...]
    #: the generated dev key, when api_dev_key=auto (to print once); None otherwise
    generated_dev_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """Parse ``api_keys`` (and ``api_dev_key``); raises ConfigError on a malformed entry."""
        entries: list[tuple[bytes, str]] = []
        for item in settings.api_keys.split(","):
            item = item.strip()
            if not item:
                continue
            project, sep, digest = item.partition(":")
            digest = digest.strip().lower()
            if not sep or not PROJECT_RE.match(project.strip()) or not _HEX_RE.match(digest):
                raise ConfigError(
                    "api_keys entries must be project:sha256hex (project: a-z 0-9 _ -, up to 64 characters); "
                    "make one with 'baton apikey PROJECT'"
                )
            entries.append((bytes.fromhex(digest), project.strip()))
        generated = None
        dev = settings.api_dev_key.strip()
        if dev:
            if dev == "auto":  # (a shorter key never gets here: check_values refuses it with the settings)
                dev = generated = "bk_dev_" + secrets.token_urlsafe(18)
            entries.append((hashlib.sha256(dev.encode()).digest(), "default"))
        return cls(tuple(entries), generated)

    def __bool__(self) -> bool:
        return bool(self.entries)

    @property
    def projects(self) -> frozenset[str]:
        """The projects some key is scoped to."""
        return frozenset(project for _digest, project in self.entries)

    def project_of(self, presented: str) -> str | None:
        """The project of a presented key, or None. Every stored hash is compared (constant time)."""
        return self.project_of_digest(hashlib.sha256(header_bytes(presented)).digest())

    def project_of_digest(self, digest: bytes) -> str | None:
        """The project of the key with this SHA-256 digest, or None (so a dashboard session, which keeps
        only the digest, ends when its key is removed from the settings)."""
        found: str | None = None
        for stored, project in self.entries:
            if hmac.compare_digest(stored, digest):
                found = project
        return found

    @staticmethod
    def bearer(header: str | None) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, or None."""
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()
