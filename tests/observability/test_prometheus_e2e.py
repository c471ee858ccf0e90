"""A real Prometheus server scrapes two real worker processes; PromQL gives back the right numbers, and
every dashboard query and alert expression returns data after a scenario that exercises them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml

from runtime import Baton, Settings
from tests.nodes import eventually, kill_process, spawn_worker, stop_process
from tests.observability.conftest import with_jobs
from tests.observability.support import (
    ALERTS,
    alert_exprs,
    binary,
    dashboard_exprs,
    grafana_to_promql,
    promtool,
    scrape,
)
from tests.servers import RedisProcess, free_port

APP = "tests.observability.jobs:app"


class Prometheus:
    """A Prometheus server process owned by the test (stopped by pid)."""

    def __init__(self, targets: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        # each target labelled with a namespace and its pod, as the ServiceMonitor's scrape labels it
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "baton", "static_configs": [
                {"targets": [target], "labels": {"namespace": "test", "pod": pod}} for pod, target in targets.items()
            ]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(workdir / "prometheus.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [binary("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
             f"--web.listen-address=127.0.0.1:{self.port}", f"--storage.tsdb.path={workdir / 'data'}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the result vector."""
        data = self.api("query", query=promql)
        return list(data["result"]) if data["resultType"] == "vector" else [{"value": data["result"]}]

    def value(self, promql: str) -> float | None:
        """The single value of an instant query, or None when it returns nothing."""
        try:
            result = self.query(promql)
        except OSError:  # not listening yet
            return None
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def prometheus_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "prometheus"
    path.mkdir()
    yield path
    if (path / "prometheus.log").exists():  # shown when the test fails
        print((path / "prometheus.log").read_text()[-3000:])


def worker_env(settings: Settings, node: str, metrics_port: int) -> dict[str, str]:
    return {
        "BATON_REDIS_URL": settings.redis_url, "BATON_PREFIX": settings.prefix, "BATON_NODE_ID": node,
        "BATON_LEASE_TTL_MS": str(settings.lease_ttl_ms), "BATON_RENEW_INTERVAL_MS": str(settings.renew_interval_ms),
        "BATON_REAP_INTERVAL_MS": str(settings.reap_interval_ms), "BATON_METRICS_PORT": str(metrics_port),
        "BATON_METRICS_HOST": "127.0.0.1", "BATON_OBSERVE_INTERVAL_MS": "250", "BATON_LOG_FORMAT": "json",
        "BATON_SHUTDOWN_GRACE_S": "2",
    }


async def _unserved(ctx: Any, payload: Any) -> None:
    return None


@pytest.mark.timeout(180)
async def test_prometheus_reads_queue_depth_and_reclaims_after_kill_9(
    settings: Settings, make_app: Callable[..., Baton], tmp_path: Path, prometheus_dir: Path,
) -> None:
    # Given two worker processes on their own Redis (AOF on: it is restarted below), serving /metrics,
    # and a Prometheus server scraping them every second
    binary("prometheus")
    server = RedisProcess(args=["--appendonly", "yes"]).start()
    settings = settings.with_changes(redis_url=server.url)
    redis = aioredis.from_url(server.url)
    ports = {"w1": free_port(), "w2": free_port()}
    workers = {node: spawn_worker(APP, worker_env(settings, node, port), tmp_path / f"{node}.log")
               for node, port in ports.items()}
    prom = Prometheus({node: f"127.0.0.1:{p}" for node, p in ports.items()}, prometheus_dir)
    try:
        # and a backlog of 37 runs of a job no worker serves, in queue q-depth
        producer = with_jobs(make_app(redis_url=server.url), ("unserved", _unserved, {"queue": "q-depth"}))
        await producer.trigger_batch([{"job": "unserved", "input": {"i": i}} for i in range(37)])

        # When Prometheus has scraped both nodes
        await eventually(lambda: prom.value('count(up{job="baton"} == 1)') == 2, 30, interval=0.25)
        # Then PromQL reads the queue depth (both nodes export it; max, then sum over partitions)
        depth = 'sum by (queue) (max by (queue, partition) (baton_queue_depth{queue="q-depth"}))'
        await eventually(lambda: prom.value(depth) == 37, 30, interval=0.25)
        assert prom.value('sum(max by (partition) (baton_partition_runs{state="queued"}))') == 37
        assert prom.value("max(baton_nodes_live)") == 2
        # and the daemon's own /metrics passes promtool's lint
        lint = promtool("check", "metrics", stdin=scrape(ports["w1"]))
        assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr

        # Given a long run executing on one of the workers
        run_id = await producer.trigger("long", {"seconds": 60})
        started = f"{settings.prefix}:obs:started"
        first = await eventually(lambda: redis.lrange(started, 0, 0), 20)
        holder = first[0].decode().rsplit(":", 1)[1]
        survivor = next(n for n in workers if n != holder)
        executing = 'sum(max by (partition) (baton_partition_runs{state="executing"}))'
        await eventually(lambda: prom.value(executing) == 1, 20, interval=0.25)
        held = f'baton_leases_held{{instance="127.0.0.1:{ports[holder]}"}}'
        await eventually(lambda: prom.value(held) == 1, 10, interval=0.25)

        # When that worker is killed with SIGKILL
        kill_process(workers[holder])
        run = await producer.wait_for(run_id, 30)
        assert run.status == "completed" and run.output == {"node": survivor, "attempt": 2}

        # Then Prometheus shows the lease reclaimed once, by the survivor, in queue obs
        reclaimed = 'sum by (instance, queue) (baton_leases_reclaimed_total)'
        await eventually(lambda: prom.value(f"sum({reclaimed})") == 1, 20, interval=0.25)
        (series,) = [s for s in prom.query(reclaimed) if float(s["value"][1]) > 0]
        assert series["metric"] == {"instance": f"127.0.0.1:{ports[survivor]}", "queue": "obs"}
        crashed = 'sum(baton_attempts_total{job_name="long", outcome="crashed"})'
        assert prom.value(crashed) == 1
        # and the killed node's target is down while the survivor's is up
        await eventually(lambda: prom.value(f'up{{instance="127.0.0.1:{ports[holder]}"}}') == 0, 20,
                         interval=0.25)
        assert prom.value(f'up{{instance="127.0.0.1:{ports[survivor]}"}}') == 1

        # and the survivor's JSON log line about the reclaim names the run, its job, attempt and node
        lines = [json.loads(x) for x in (tmp_path / f"{survivor}.log").read_text().splitlines() if x.startswith("{")]
        (line,) = [x for x in lines if x["msg"].startswith("reclaimed expired lease")]
        assert (line["run_id"], line["job"], line["attempt"], line["node"]) == (run_id, "long", 1, survivor)

        # Given the rest of what the dashboards show: a dead-lettered run, a rejected entry
        dead = await producer.trigger("boom")
        assert (await producer.wait_for(dead, 30)).status == "dead_letter"
        await redis.xadd(producer.keys.submit_stream, {"job": "no_such_job"})
        await eventually(lambda: prom.value("sum(baton_intake_entries_rejected_total)") == 1, 20, interval=0.25)
        # When Redis goes away (SIGKILL) long enough for the client's own retries to give up
        server.kill()
        # Then the survivor's actors reconnect, and Prometheus sees it (the metrics thread still answers)
        await eventually(lambda: (prom.value("sum(baton_redis_reconnects_total)") or 0) > 0, 30, interval=0.25)
        # and once Redis is back (same port and data) the node works on
        server = RedisProcess(port=server.port, dir=server.dir, args=["--appendonly", "yes"]).start()
        back = await producer.trigger("ok", {"back": True})
        assert (await producer.wait_for(back, 30)).status == "completed"
        # and the survivor exports the cluster gauges (it holds the scheduler lease by now, or soon)
        await eventually(lambda: prom.value("max(baton_nodes_live)") == 1, 30, interval=0.25)
        (exporter,) = prom.query("baton_nodes_live")
        assert exporter["metric"]["pod"] == survivor

        # and the alert rules loaded into the server are healthy, and every dashboard query and every
        # operand of every alert expression returns data (on All for the dashboard's variables)
        groups = prom.api("rules")["groups"]
        assert groups and all(r["health"] == "ok" for g in groups for r in g["rules"]), groups
        queries = [(f"{file}: {title}", grafana_to_promql(expr)) for file, title, expr in dashboard_exprs()]
        queries += [(f"alert {name}", part) for name, expr in alert_exprs() for part in alert_operands(expr)]
        empty = []
        for where, query in queries:
            try:
                if not prom.query(query):
                    empty.append(f"{where}: {query}")
            except (AssertionError, OSError) as exc:  # a 400 for a query Prometheus rejects
                raise AssertionError(f"{where}: {query}: {exc}") from exc
        assert not empty, "\n".join(empty)
        # and per-node panels name pods, not addresses
        held = prom.query("sum by (pod) (baton_leases_held{namespace=~\".*\", job=~\".*\"})")
        assert {s["metric"]["pod"] for s in held} == {survivor}
    finally:
        for proc in workers.values():
            stop_process(proc)
        prom.stop()
        await redis.aclose()
        server.stop()


def alert_operands(expr: str) -> list[str]:
    """The operands an alert expression compares and combines (split at top-level comparisons and set
    operators; numbers left out): each must select data for the alert to be able to fire."""
    parts, depth, start = [], 0, 0
    ops = re.compile(r"\s(?:>=|<=|==|!=|>|<|and|or|unless)\s")
    i = 0
    while i < len(expr):
        ch = expr[i]
        depth += ch in "([{"
        depth -= ch in ")]}"
        m = ops.match(expr, i) if depth == 0 else None
        if m:
            parts.append(expr[start:i])
            i = start = m.end()
            continue
        i += 1
    parts.append(expr[start:])
    operands = []
    for part in (p.strip() for p in parts):
        if not part or re.fullmatch(r"[\d.]+", part):
            continue
        if part.startswith("(") and _closing_paren(part, 0) == len(part) - 1:
            operands += alert_operands(part[1:-1])  # a parenthesised combination: its own operands
        elif part.startswith("absent(") and _closing_paren(part, len("absent")) == len(part) - 1:
            # absent(X) has data only while X has none: in a healthy deployment it is X that must
            operands.append(part[len("absent("):-1])
        else:
            operands.append(part)
    return operands


def _closing_paren(text: str, at: int) -> int:
    """Where the parenthesis opened at ``at`` closes (-1: it does not)."""
    depth = 0
    for i in range(at, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return i
    return -1
