"""depends_on and max_queued over HTTP and the submission stream: triggers, dependency status, admission."""

from __future__ import annotations

import io
from typing import Any

import orjson

from runtime.api.commands_ops import run_ops_command
from runtime.api.views import VIEWS
from runtime.cli import build_parser
from runtime.codec import text
from tests.api.conftest import ApiNode
from tests.nodes import eventually

OPERATOR = "default"


async def test_trigger_with_depends_on_waits_and_dependency_status_reports_parents(api: ApiNode) -> None:
    # Given a parent held at its gate and a dependent triggered over HTTP, naming it by the id the API returned
    parent = await api.trigger("gated", {"gate": "p"})
    done = await api.trigger("echo", 1)
    await api.wait_status(done, "completed")
    status, body = await api.call("POST", "/v1/jobs/echo/trigger", json={
        "input": 2, "depends_on": [parent, {"id": done, "on_failure": "ignore", "name": "first"}]})
    assert status == 201, body
    dep = body["id"]
    assert (await api.run(dep, view="native"))["status"] == "waiting"
    for view in VIEWS:  # every view renders a run waiting for parents
        await api.run(dep, view=view)
    # Then the dependency status names both parents: the finished one satisfied, the running one not
    status, deps = await api.call("GET", f"/v1/runs/{dep}/dependency-status")
    assert status == 200, deps
    by_parent = {d["depends_on_run_id"]: d for d in deps["dependencies"]}
    assert by_parent[done]["satisfied"] and not by_parent[parent]["satisfied"]
    assert by_parent[parent]["depends_on_job_id"] == "gated" and not deps["dependencies_satisfied"]
    status, strait = await api.call("GET", f"/v1/runs/{dep}/dependency-status", params={"view": "strait"})
    assert status == 200 and {d["depends_on_job_id"] for d in strait["dependencies"]} == {"gated", "echo"}
    # When the parent finishes, the dependent runs and its status says nothing holds it back
    api.gates.open("p")
    assert (await api.wait_status(dep))["status"] == "completed"
    _, deps = await api.call("GET", f"/v1/runs/{dep}/dependency-status")
    assert deps["dependencies_satisfied"] and all(d["satisfied"] for d in deps["dependencies"])


async def test_depends_on_errors_are_clear_and_other_projects_runs_are_unknown(api: ApiNode) -> None:
    theirs = await api.trigger("echo", 1, project="beta")
    for parents, code in ((["missing-run"], (404, "unknown_parent")), ([theirs], (404, "unknown_parent")),
                          ([{"id": "x", "on_failure": "sometimes"}], (400, "invalid_body"))):
        status, body = await api.call("POST", "/v1/jobs/echo/trigger", json={"depends_on": parents})
        assert (status, body["code"]) == code, body


async def test_max_queued_answers_429_and_the_admission_endpoints_change_it(api: ApiNode) -> None:
    # Given a queue capped at one run not yet started, by the operator API
    status, body = await api.call("PUT", "/v1/queues/mail/admission", OPERATOR, json={"max_queued": 1})
    assert status == 200 and body == {"scope": "queue", "name": "mail", "max_queued": 1, "admitted": 0}, body
    await api.app.pause_queue("mail")
    await api.trigger("mail", {})
    # Then the next trigger is refused with 429 queue_full, and a batch reports it per run
    status, body = await api.call("POST", "/v1/jobs/mail/trigger", json={"input": {}})
    assert (status, body["code"]) == (429, "queue_full"), body
    status, body = await api.call("POST", "/v1/runs/batch", json={"runs": [{"job": "mail"}, {"job": "echo"}]})
    assert status == 201 and [r["outcome"] for r in body["runs"]] == ["queue_full", "created"], body
    _, body = await api.call("GET", "/v1/queues/mail/admission", OPERATOR)
    assert body["admitted"] == 1
    # and a job's cap is set the same way, and lifted with null
    status, body = await api.call("PUT", "/v1/jobs/echo/admission", OPERATOR, json={"max_queued": 5})
    assert status == 200 and body["max_queued"] == 5
    status, body = await api.call("PUT", "/v1/jobs/echo/admission", OPERATOR, json={"max_queued": None})
    assert status == 200 and body["max_queued"] is None
    status, body = await api.call("PUT", "/v1/jobs/echo/admission", OPERATOR, json={"max_queued": 0})
    assert status == 400, body
    await api.app.resume_queue("mail")


async def test_stream_entries_depend_and_go_to_the_rejected_stream_when_refused(api: ApiNode) -> None:
    app = api.app
    parent = await app.trigger("echo", "p")
    # (single runs one at a time: the second waits queued, filling a cap of one)
    await app.set_max_queued(1, job="single")
    await app.wait_for(await app.trigger("single", {"gate": "s1"}), 10, statuses=["executing"])
    await app.trigger("single", {"gate": "s2"})
    # When a producer XADDs a dependent, one naming a missing parent, and one over the job's cap
    stream = app.keys.submit_stream
    ok = await app.redis.xadd(stream, {"job": "echo", "input": '"d"', "depends_on": f'["{parent}"]'})
    await app.redis.xadd(stream, {"job": "echo", "depends_on": '["nope"]'})
    await app.redis.xadd(stream, {"job": "single", "input": "{}"})

    async def rejected() -> list[Any]:
        entries = await app.redis.xrange(app.keys.rejected_stream)
        reasons = [text(fields[b"reason"]) for _, fields in entries]
        return reasons if len(reasons) >= 2 else []

    # Then the dependent runs after its parent, and the other two are rejected with their reasons
    assert sorted(await eventually(rejected, 10)) == ["queue_full", "unknown_parent"]
    run = await app.wait_for(text(ok), 10)
    assert run.status == "completed" and run.output == "d"
    api.gates.open("s1")
    api.gates.open("s2")
    await app.set_max_queued(None, job="single")


async def test_admission_cli_sets_shows_and_clears_a_cap(api: ApiNode, capsys: Any) -> None:
    async def baton(*args: str) -> tuple[int, str]:
        # in-process (the CLI's own parser and command), which is what `baton admission ...` runs
        ns = build_parser().parse_args([*args, "--api-url", api.url, "--api-key", api.keys[OPERATOR]])
        out = io.StringIO()
        return await run_ops_command(ns, out), out.getvalue()

    # When an operator caps the mail queue from the shell
    code, out = await baton("admission", "set", "--queue", "mail", "3")
    assert code == 0 and out.splitlines()[0].split() == ["SCOPE", "NAME", "MAX_QUEUED", "ADMITTED"]
    assert out.splitlines()[1].split() == ["queue", "mail", "3", "0"]
    # Then get and clear show and remove it, and a bad cap is one line on stderr and exit 1
    code, out = await baton("admission", "get", "--job", "echo", "--json")
    assert code == 0 and orjson.loads(out) == {"scope": "job", "name": "echo", "max_queued": None, "admitted": 0}
    code, out = await baton("admission", "clear", "--queue", "mail", "--json")
    assert code == 0 and orjson.loads(out)["max_queued"] is None
    capsys.readouterr()
    code, out = await baton("admission", "set", "--queue", "mail", "0")
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "max_queued" in err
