"""The chaos harness's process handling: a skewed clock that leaves nothing behind, exits that say why."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from bench.chaos.processes import RedisServer, Worker, skewed_clock_env, skewed_clock_leftovers
from bench.chaos.sentinel import SentinelSet, replica_state, without_replicaof


def _wait_for_line(log: Path, worker: Worker, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if text.endswith("\n"):
            return text
        assert worker.alive(), f"the process exited with {worker.proc and worker.proc.returncode}: {text!r}"
        time.sleep(0.02)
    raise AssertionError(f"no line in {log} within {timeout_s}s")


def test_a_skewed_clock_moves_the_wall_clock_only_and_leaves_nothing_behind_when_killed(tmp_path: Path) -> None:
    env = skewed_clock_env("-1h")
    if env is None:
        pytest.skip("libfaketime is not installed (Debian package faketime); ./dev installs it")
    # Given a harness worker slot started with the skewed clock, its process printing both clocks
    # (it waits on an Event: libfaketime breaks time.sleep when the monotonic clock is left true)
    code = "import threading, time; print(time.time(), time.monotonic(), flush=True); threading.Event().wait(60)"
    worker = Worker("w7", env, tmp_path, command=(sys.executable, "-c", code)).start()
    try:
        wall, mono = (float(x) for x in _wait_for_line(tmp_path / "w7.log", worker).split())
        real_wall, real_mono = time.time(), time.monotonic()
        # Then the process is the node itself (no wrapper process whose own objects would leak)
        assert Path(f"/proc/{worker.pid}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-c", code.encode()]
        # And its wall clock runs an hour behind, its monotonic clock true
        assert abs(wall - real_wall + 3600) < 60
        assert abs(mono - real_mono) < 60
        assert skewed_clock_leftovers(worker.pid), "libfaketime made no shared objects: the check below proves nothing"
    finally:
        # When the harness kills it with -9, as the chaos scenarios do
        worker.signal(signal.SIGKILL)
    # Then nothing of it is left in /dev/shm: a leftover named after a pid breaks the next faketime that gets it
    assert worker.proc is not None and worker.proc.returncode == -signal.SIGKILL
    assert skewed_clock_leftovers(worker.pid) == []


def test_a_node_that_exits_on_its_own_is_reported_with_the_end_of_its_log(tmp_path: Path) -> None:
    # Given a worker slot whose process writes to its log and exits 1 on its own
    worker = Worker("w9", {}, tmp_path)
    worker.incarnation = 1
    (tmp_path / "w9.log").write_text("line 1\nsem_open: File exists\n")
    worker.proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    worker.proc.wait(10)
    # When the harness notices the exit
    assert worker.note_exit()
    # Then the exit and the end of the log are recorded, once
    assert worker.unexpected_exits == [("w9.1", 1)]
    assert "sem_open: File exists" in worker.exit_log_tails["w9.1"]
    assert worker.note_exit() and worker.unexpected_exits == [("w9.1", 1)]


def test_the_wall_clock_offset_is_read_from_the_incarnations_first_log_line(tmp_path: Path) -> None:
    # Given a slot's log with an earlier incarnation's line and the current one's, an hour behind
    worker = Worker("w2", {}, tmp_path)
    worker.incarnation, worker.started_at = 2, 1_800_000_000.0
    (tmp_path / "w2.log").write_text(
        '{"ts":"2027-01-15T08:00:00.000+00:00","msg":"started","node":"w2.1"}\n'
        "not json at all\n"
        '{"ts":"2027-01-15T07:00:01.500+00:00","msg":"started","node":"w2.2"}\n'
    )
    # Then the offset is the current incarnation's: an hour behind, 1.5 s after the harness started it
    assert worker.wall_clock_offset_s() == pytest.approx(-3600 + 1.5)
    worker.incarnation = 3
    assert worker.wall_clock_offset_s() is None


def test_a_replica_that_does_not_sync_is_reported_with_its_role_link_and_log() -> None:
    # Given a server told to follow a master that does not exist (nothing listens on port 1)
    server = RedisServer(args=["--replicaof", "127.0.0.1", "1"]).start()
    try:
        # When it has tried to connect (the replication cron logs it within a second or so)
        deadline = time.monotonic() + 15
        while "Connecting to MASTER" not in (server.dir / "log").read_text(errors="replace"):
            assert time.monotonic() < deadline, "the server never logged a connection attempt"
            assert server.proc is not None and server.proc.poll() is None, "the server exited"
            time.sleep(0.05)
        # Then the report names its role and its down link, and quotes its own log
        state = replica_state(server)
        assert "role=slave" in state and "master_port=1" in state and "master_link_status=down" in state
        assert "its log ends:" in state and "Connecting to MASTER 127.0.0.1:1" in state
    finally:
        server.stop()
    # And a server that is gone is still reported, not raised on
    assert "INFO replication failed" in replica_state(server)


def test_a_killed_data_node_rejoins_as_the_current_masters_replica_never_as_a_master() -> None:
    # Given a Sentinel set whose replica was killed
    sentinels = SentinelSet().start()
    try:
        master, replica = sentinels.servers
        replica.kill()
        # When it rejoins
        sentinels.rejoin(replica)
        # Then it is a replica of the master the sentinels name from its first moment (never an empty
        # master a later failover could promote), named once, and it syncs
        assert replica.args.count("--replicaof") == 1
        with redis.Redis(port=replica.port) as client:
            info = client.info("replication")
        assert (info["role"], int(info["master_port"])) == ("slave", master.port)
        sentinels.wait_replicated(replica)
        # (and no failover happened: the count the sentinel scenario reports reads 0)
        assert sentinels.failovers() == 0
        # And the master itself cannot rejoin: no other master is named
        with pytest.raises(RuntimeError, match="no sentinel names a master other than"):
            sentinels.rejoin(master)
    finally:
        sentinels.stop()
    assert without_replicaof(["--a", "1", "--replicaof", "h", "2", "--b"]) == ["--a", "1", "--b"]
