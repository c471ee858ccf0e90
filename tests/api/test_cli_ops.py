"""The operator CLI against a live API: `baton queues|schedules|nodes|limits|bulk`, and shell completion."""

from __future__ import annotations

import subprocess
import sys

import orjson

from tests.api.conftest import ApiNode
from tests.api.test_cli import baton
from tests.nodes import ROOT

OPERATOR = "default"


async def test_queue_and_limit_verbs_print_tables_json_and_one_line_errors(api: ApiNode) -> None:
    # When the mail queue is paused from the shell
    code, out, err = await baton(api, "queues", "pause", "mail", project=OPERATOR)
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["QUEUE", "PAUSED", "QUEUED"] and out.splitlines()[1].split()[:2] == \
        ["mail", "yes"]
    run_id = await api.trigger("mail", {"n": 1})
    # Then `queues ls --json` shows it paused with its queued run
    code, out, err = await baton(api, "queues", "ls", "--json", project=OPERATOR)
    mail = next(q for q in orjson.loads(out)["data"] if q["name"] == "mail")
    assert code == 0 and mail["paused"] is True and mail["counts"]["queued"] == 1
    # And a purge without --yes is refused in one line, with exit 2, and touches nothing
    code, out, err = await baton(api, "queues", "purge", "mail", project=OPERATOR)
    assert code == 2 and err.count("\n") == 1 and "--yes" in err and "Traceback" not in err
    assert (await api.run(run_id))["status"] == "queued"
    code, out, err = await baton(api, "queues", "purge", "mail", "--yes", project=OPERATOR)
    assert code == 0 and "purged 1 queued run(s) of mail" in out
    assert (await api.run(run_id))["status"] == "canceled"
    # When limits are set and read
    code, out, err = await baton(api, "limits", "set", "echo", "--max-concurrency", "4", "--rate", "10/1",
                                 project=OPERATOR)
    assert code == 0, err
    effective = next(line for line in out.splitlines() if line.startswith("effective")).split()
    assert effective[1:] == ["4", "-", "10/1s", "-"]
    code, out, err = await baton(api, "limits", "clear", "echo", "--json", project=OPERATOR)
    assert code == 0 and orjson.loads(out)["override"] is None
    # And an API refusal (a key of another project) is one line and exit 1
    code, out, err = await baton(api, "nodes", "ls", project="alpha")
    assert code == 1 and err.count("\n") == 1 and "403 forbidden" in err


async def test_schedule_node_and_bulk_verbs(api: ApiNode) -> None:
    code, out, err = await baton(api, "schedules", "set", "hourly", "--job", "echo", "--cron", "0 * * * *",
                                 "--input", '{"from": "cli"}', project=OPERATOR)
    assert code == 0, err
    assert out.splitlines()[1].split()[:5] == ["hourly", "echo", "0", "*", "*"]
    code, out, err = await baton(api, "schedules", "trigger", "hourly", project=OPERATOR)
    assert code == 0 and out.startswith("cron.hourly.")
    assert (await api.wait_status(out.strip(), project="default"))["output"] == {"from": "cli"}
    code, out, err = await baton(api, "schedules", "backfill", "hourly", "--start", "2026-01-01T00:00:00Z",
                                 "--end", "2026-01-01T02:30:00Z", project=OPERATOR)
    assert code == 0 and out.startswith("3 tick(s): 3 run(s) started"), out
    code, out, err = await baton(api, "nodes", "ls", project=OPERATOR)
    assert code == 0 and api.app.settings.node_id in out
    ids = [await api.trigger("echo", i, delay=600) for i in range(5)]
    code, out, err = await baton(api, "bulk", "cancel", "--job", "echo", "--wait", "--json")
    action = orjson.loads(out)
    assert code == 0 and (action["status"], action["succeeded"]) == ("completed", 5), (out, err)
    assert {(await api.run(i))["status"] for i in ids} == {"canceled"}
    # the table shows the runs an action acted on, and says when it stopped at its limit (it showed
    # "5/100000", which reads as progress toward the default cap)
    more = [await api.trigger("echo", i, delay=600) for i in range(3)]
    code, out, err = await baton(api, "bulk", "cancel", "--job", "echo", "--limit", "2", "--wait")
    assert code == 0 and out.splitlines()[1].split()[3:5] == ["2", "(limit)"], (out, err)
    code, out, err = await baton(api, "bulk", "ls")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows[action["id"]][3:5] == ["5", "5"], out  # PROCESSED, then SUCCEEDED
    assert [(await api.run(i))["status"] for i in more].count("canceled") == 2


def test_bash_completion_completes_subcommands_flags_and_choices() -> None:
    script = subprocess.run([sys.executable, "-m", "runtime", "completion", "bash"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout

    def complete(*words: str) -> set[str]:
        line = " ".join(f"'{w}'" for w in words)
        probe = f'COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _baton_complete; printf "%s\\n" "${{COMPREPLY[@]}}"'
        done = subprocess.run(["bash", "-c", script + "\n" + probe], capture_output=True, text=True, check=True)
        return set(done.stdout.split())

    assert complete("baton", "qu") == {"queues"}
    assert {"ls", "get", "pause", "resume", "purge"} <= complete("baton", "queues", "")
    assert complete("baton", "schedules", "set", "x", "--overlap", "") == {"allow", "skip", "cancel"}
    assert complete("baton", "queues", "ls", "--j") == {"--json"}
    assert complete("baton", "completion", "") == {"-h", "--help", "bash", "zsh"}
    zsh = subprocess.run([sys.executable, "-m", "runtime", "completion", "zsh"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert zsh.startswith("autoload -U +X bashcompinit && bashcompinit\n") and script.splitlines()[1] in zsh
