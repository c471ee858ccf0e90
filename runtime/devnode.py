"""The development node of a checkout, found from what it leaves in ``.baton/``.

``./dev up`` runs a node on the embedded server (its port and pid in
``<embedded_dir>/server.json``; where its API listens in ``.baton/api.json``)
with a development API key that is kept in ``.baton/api-dev-key`` (created
once, so it stays the same across restarts of the same checkout). The CLI run
in that checkout uses them without being told: the embedded server when no
Redis and no API URL is configured, the node's API when no API URL is given,
the stored key when no key is given.

``python -m runtime.devnode key`` prints the stored key, creating it first.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import orjson

from .embedded import alive_server
from .settings import Settings

__all__ = ["API_FILE", "DEV_KEY_FILE", "dev_api_url", "dev_dir", "dev_key", "embedded_url", "forget_api",
           "found_dir", "record_api"]

#: the development API key's file, in the directory holding the embedded server's (``.baton``)
DEV_KEY_FILE = "api-dev-key"
#: where a node on the embedded server says where its API listens (and its pid, to tell a stale file)
API_FILE = "api.json"


def dev_dir(settings: Settings) -> Path:
    """The checkout's ``.baton`` directory: the parent of ``embedded_dir`` (where a node writes)."""
    return Path(settings.embedded_dir).parent


def found_dir(settings: Settings) -> Path:
    """The ``.baton`` directory a command run here reads: a relative ``embedded_dir`` (the default
    ``.baton/redis``) is looked for here, then in each directory above, as git finds its checkout, so the
    CLI finds the development node from any directory of the checkout."""
    own = dev_dir(settings)
    if own.is_absolute():
        return own
    here = Path.cwd()
    return next((base / own for base in (here, *here.parents) if (base / own).is_dir()), own)


def dev_key(settings: Settings, create: bool = False) -> str | None:
    """The stored development API key (made first when ``create``, in this directory's checkout); None
    when there is none."""
    path = (dev_dir(settings) if create else found_dir(settings)) / DEV_KEY_FILE
    try:
        key = path.read_text().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "bk_dev_" + secrets.token_urlsafe(18)
    # readable by its owner only: it is a credential, if a development one
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def embedded_url(settings: Settings) -> str | None:
    """The URL of the embedded server a node of this checkout runs now, or None."""
    found = alive_server(found_dir(settings) / Path(settings.embedded_dir).name / "server.json")
    return None if found is None else f"redis://127.0.0.1:{found[0]}"


def record_api(settings: Settings) -> None:
    """Note where this node's API listens (a node on the embedded server, with ``api_port``)."""
    host = settings.api_host if settings.api_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    path = dev_dir(settings) / API_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(orjson.dumps({"url": f"http://{host}:{settings.api_port}", "pid": os.getpid()}).decode())


def forget_api(settings: Settings) -> None:
    """Remove this node's note (when it stops)."""
    (dev_dir(settings) / API_FILE).unlink(missing_ok=True)


def dev_api_url(settings: Settings) -> str | None:
    """The API URL of the development node running in this checkout, or None."""
    try:
        info = orjson.loads((found_dir(settings) / API_FILE).read_bytes())
        os.kill(int(info["pid"]), 0)  # a node killed without cleanup left the file: it serves nothing
        return str(info["url"])
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None


def main(argv: list[str] | None = None) -> int:
    """``key``: print the development API key, creating it first."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["key"]:
        print("usage: python -m runtime.devnode key", file=sys.stderr)
        return 2
    print(dev_key(Settings.from_env(), create=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
