"""The embedded server of the quick start: AOF on, own session, reused after a crash."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import redis

from runtime.connection import EmbeddedServer


def test_embedded_server_survives_a_killed_owner_and_is_reused(tmp_path: Path) -> None:
    # Given an embedded server started with AOF on
    first = EmbeddedServer(tmp_path / "data")
    url = first.start()
    client = redis.Redis.from_url(url)
    try:
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "always"
        client.set("k", "v")
        pid = first._proc.pid if first._proc else 0
        assert os.getpgid(pid) != os.getpgid(0)  # own session: a terminal's Ctrl-C does not reach it
        # When its owner dies without stopping it, a new owner on the same dir reuses it
        second = EmbeddedServer(tmp_path / "data")
        assert second.start() == url
        assert client.get("k") == b"v"
        second.stop()
    finally:
        client.close()
        if first._proc and first._proc.poll() is None:
            os.kill(first._proc.pid, signal.SIGKILL)
            first._proc.wait(10)
    # Then stopping it really stopped the process
    assert first._proc is not None and first._proc.wait(10) is not None
