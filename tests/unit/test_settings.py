"""Settings: every value from the environment or a flag is checked in one place, with an error naming it;
unknown BATON_* names are reported; Redis variables never lead to the embedded server; README table in step."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from runtime import settings as settings_module
from runtime.cli import main
from runtime.connection import connect
from runtime.errors import ConfigError
from runtime.settings import Settings
from tests.servers import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
URL = "redis://127.0.0.1:6390"


def from_env(**env: str) -> Settings:
    return Settings.from_env({"BATON_REDIS_URL": URL, **env})


@pytest.mark.parametrize(("name", "value"), [
    ("CONCURRENCY", "0"), ("CONCURRENCY", "-3"), ("CONCURRENCY", "10" * 15), ("CONCURRENCY", "ten"),
    ("CONCURRENCY", "1.5"), ("PARTITIONS", "0"), ("LEASE_TTL_MS", "50"), ("RENEW_INTERVAL_MS", "0"),
    ("REAP_INTERVAL_MS", "0"), ("CLAIM_BATCH", "0"), ("IDLE_POLL_MS", "-1"), ("INTAKE_BATCH", "0"),
    ("INTAKE_CLAIM_IDLE_MS", "0"), ("MAX_INPUT_BYTES", "0"), ("DEFAULT_MAX_ATTEMPTS", "0"),
    ("DEFAULT_TIMEOUT_S", "0"), ("DEFAULT_TIMEOUT_S", "nan"), ("DEFAULT_TIMEOUT_S", "inf"),
    ("FINISHED_TTL_S", "0"), ("DEAD_LETTER_TTL_S", "-1"), ("FINISHED_CAP", "0"), ("IDEMPOTENCY_TTL_S", "0"),
    ("RECONCILE_INTERVAL_MS", "-5"), ("EVENT_TTL_S", "0"), ("REJECTED_MAX_LEN", "0"),
    ("SHUTDOWN_GRACE_S", "-1"), ("SHUTDOWN_GRACE_S", "nan"), ("METRICS_PORT", "70000"), ("METRICS_PORT", "-1"),
    ("OBSERVE_INTERVAL_MS", "-1"), ("MAX_RESTARTS", "-1"), ("RESTART_WINDOW_S", "0"), ("API_PORT", "65536"),
    ("MAX_BODY_BYTES", "10"), ("API_SCAN_LIMIT", "1"), ("LOG_FORMAT", "xml"), ("LOG_LEVEL", "LOUD"),
    ("PREFIX", ""), ("PREFIX", "a}b"), ("PREFIX", "ba*"), ("QUEUES", "a,b c"), ("NODE_ID", "has space"),
    ("HANDOFF", "maybe"), ("REDIS_CLUSTER", "2"), ("API_DEV_KEY", "short-secret"),
])
def test_every_setting_is_checked_and_the_error_names_its_variable(name: str, value: str) -> None:
    # When a setting's variable holds a value out of range (or not of its type)
    with pytest.raises(ConfigError) as caught:
        from_env(**{f"BATON_{name}": value})
    # Then the configuration error names the variable (and the flag), and does not repeat a key
    message = str(caught.value)
    assert f"BATON_{name}" in message and f"--{name.lower().replace('_', '-')}" in message, message
    assert "short-secret" not in message


def test_lease_ttl_must_leave_room_for_renewals() -> None:
    with pytest.raises(ConfigError, match=r"BATON_RENEW_INTERVAL_MS.*lease_ttl_ms"):
        from_env(BATON_LEASE_TTL_MS="1000", BATON_RENEW_INTERVAL_MS="2000")
    assert from_env(BATON_LEASE_TTL_MS="1000", BATON_RENEW_INTERVAL_MS="500").renew_interval_ms == 500


def test_zero_means_off_where_documented() -> None:
    s = from_env(BATON_METRICS_PORT="0", BATON_RECONCILE_INTERVAL_MS="0", BATON_OBSERVE_INTERVAL_MS="0",
                 BATON_SHUTDOWN_GRACE_S="0", BATON_API_PORT="0")
    assert (s.metrics_port, s.reconcile_interval_ms, s.observe_interval_ms, s.api_port) == (0, 0, 0, 0)


def test_every_numeric_setting_has_bounds() -> None:
    # a setting added without bounds would be accepted at any value: each number needs a row in BOUNDS
    numeric = {f.name for f in fields(Settings) if str(f.type) in ("int", "float")}
    assert numeric == set(settings_module.BOUNDS)


def test_values_given_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        Settings(concurrency=0)
    with pytest.raises(ConfigError, match="concurrency"):
        Settings(concurrency="5")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="concurrency"):
        Settings(concurrency=True)


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1:6379", "scheme"),
    ("redis+sentinel://127.0.0.1:26379", "service"),
    ("redis+sentinel://127.0.0.1:x/mymaster", "sentinel must be host:port"),
    ("redis+sentinel://127.0.0.1:26379/mymaster/x", "database"),
    ("redis+sentinel://127.0.0.1:26379/mymaster?decode_responses=1", "option"),
    ("valkey://127.0.0.1:6379", "scheme"),
    ("127.0.0.1:6379", "scheme"),
    ("redis://127.0.0.1:99999", "port"),
    ("redis://127.0.0.1:0", "port"),
    ("redis://user:s3cret@127.0.0.1:port", "port"),
    ("redis://:6379", "host"),
    ("redis://127.0.0.1:6379/x", "database"),
    ("redis://127.0.0.1:6379/-1", "database"),
    ("redis://127.0.0.1:6379?db=x", "db"),
    ("redis://127.0.0.1:6379?decode_responses=true", "decode_responses"),
    ("redis://127.0.0.1:6379?socket_timeout=soon", "socket_timeout"),
    ("rediss://127.0.0.1:6379?colour=blue", "colour"),
    ("unix://", "path"),
])
def test_bad_redis_urls_are_configuration_errors(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BATON_REDIS_URL": url.replace("user:s3cret@", "ada:s3cret@")})
    message = str(caught.value)
    assert "BATON_REDIS_URL" in message and why in message, message
    assert "s3cret" not in message  # a password never appears in an error


def test_good_redis_urls_pass() -> None:
    for url in ("redis://127.0.0.1:6379", "redis://ada:s3cret@host.example:6380/2", "rediss://h:1/0?ssl_ca_certs=/ca.pem",
                "redis://h?db=3&socket_timeout=1.5", "unix:///run/redis.sock", "REDIS://H:7"):
        assert Settings.from_env({"BATON_REDIS_URL": url}).redis_url == url
    with pytest.raises(ConfigError, match="BATON_REDIS_CLUSTER"):
        Settings.from_env({"BATON_REDIS_URL": "redis://h:1/2", "BATON_REDIS_CLUSTER": "1"})


def test_a_cluster_url_may_list_several_entry_points() -> None:
    # a URL naming several nodes is a Cluster's entry points (a node that starts while one is down
    # still finds the cluster), checked node by node and for the Cluster's rules
    url = "redis://ada:s3cret@10.0.0.1:7000,10.0.0.2:7000,[::1]:7001?socket_timeout=2"
    assert Settings.from_env({"BATON_REDIS_URL": url, "BATON_REDIS_CLUSTER": "1"}).redis_url == url
    for bad, why in (("redis://ada:s3cret@h:7000,h2", "entry point must be host:port"),
                     ("redis://ada:s3cret@h:7000,h2:0", "entry point must be host:port"),
                     ("redis://ada:s3cret@h:7000,h2:7000/3", "database 0"),
                     ("redis://ada:s3cret@h:7000,h2:7000?colour=blue", "colour")):
        with pytest.raises(ConfigError, match=why) as caught:
            Settings.from_env({"BATON_REDIS_URL": bad, "BATON_REDIS_CLUSTER": "1"})
        assert "s3cret" not in str(caught.value)
    # without the Cluster setting, several hosts are refused, saying what they would mean
    with pytest.raises(ConfigError, match="BATON_REDIS_CLUSTER"):
        Settings.from_env({"BATON_REDIS_URL": "redis://h:7000,h2:7000"})


@pytest.mark.parametrize(("url", "cluster", "why"), [
    ("redis://ada:s3cret@h:7000,h2:7000", False, "BATON_REDIS_CLUSTER"),
    ("redis://ada:s3cret@h:7000,h2", True, "entry point must be host:port"),
    ("redis://ada:s3cret@h:7000?colour=blue", False, "colour"),
    ("http://ada:s3cret@h:7000", False, "unsupported scheme"),
])
def test_connect_refuses_what_settings_refuse(url: str, cluster: bool, why: str) -> None:
    # an application's own client (runtime.connect) meets the same rules, not redis-py's later error
    with pytest.raises(ConfigError, match=why) as caught:
        connect(url, cluster=cluster)
    assert "s3cret" not in str(caught.value)


def test_unknown_baton_variables_are_warned_about_by_name() -> None:
    env = {"BATON_CONCURENCY": "5", "BATON_SHINY": "secret-value", "BATON_API_URL": "http://x", "BATON_API_KEY": "k",
           "BATON_CONCURRENCY": "5", "OTHER": "1"}
    warnings = settings_module.env_warnings(env)
    assert len(warnings) == 2, warnings
    assert "BATON_CONCURENCY" in warnings[0] and "BATON_CONCURRENCY" in warnings[0]  # the likely meant one
    assert "BATON_SHINY" in warnings[1] and "secret-value" not in " ".join(warnings)
    assert settings_module.env_warnings({"BATON_PREFIX": "x", "BATON_API_URL": "u"}) == []
    # a BATON_REDIS_* name that is no setting is not "ignored": Settings refuses it, and says why alone
    assert settings_module.env_warnings({"BATON_REDIS_PASSWORD": "x"}) == []
    with pytest.raises(ConfigError, match="BATON_REDIS_PASSWORD is not a Baton setting"):
        Settings.from_env({"BATON_REDIS_PASSWORD": "x"})


@pytest.mark.parametrize("env", [
    {"REDIS_HOST": "10.0.0.1"},
    {"REDIS_PASSWORD": "s3cret"},
    {"BATON_REDIS_CLUSTER": "false"},
    {"BATON_REDIS_URL": ""},
    {"REDIS_URL": ""},
])
def test_redis_variables_without_a_url_never_mean_embedded(env: dict[str, str]) -> None:
    # Given a Redis-related variable and no Redis URL: the settings build, but the embedded server is refused
    assert Settings.from_env(env).redis_url == ""
    with pytest.raises(ConfigError) as caught:
        settings_module.check_embedded_allowed(env)
    # Then the error names it, says what is supported, and leaks no value
    message = str(caught.value)
    assert next(iter(env)) in message and "BATON_REDIS_URL" in message and "embedded" in message
    assert "s3cret" not in message


@pytest.mark.parametrize("name", ["BATON_REDIS_PASSWRD", "BATON_REDIS_SENTINELS", "BATON_REDIS_PASSWORD",
                                  "BATON_REDIS_SENTINEL_MASTER", "BATON_REDIS_URI"])
@pytest.mark.parametrize("url", [URL, None])
def test_unsupported_baton_redis_variables_always_fail(name: str, url: str | None) -> None:
    # An unsupported Redis variable is refused with or without a URL (never ignored, never embedded)
    env = {name: "s3cret"} if url is None else {"BATON_REDIS_URL": url, name: "s3cret"}
    with pytest.raises(ConfigError, match=name) as caught:
        Settings.from_env(env)
    assert "BATON_REDIS_URL" in str(caught.value) and "s3cret" not in str(caught.value)


def test_no_redis_variable_at_all_keeps_the_embedded_default() -> None:
    s = Settings.from_env({"BATON_PREFIX": "x", "HOME": "/root"})
    assert s.redis_url == ""
    settings_module.check_embedded_allowed({"BATON_PREFIX": "x", "HOME": "/root"})
    # plain REDIS_* names next to a URL (a Kubernetes service named redis injects REDIS_PORT ...) are fine
    assert Settings.from_env({"REDIS_URL": URL, "REDIS_PORT": "tcp://10.0.0.1:6379"}).redis_url == URL


def test_flags_are_checked_like_variables(capsys: pytest.CaptureFixture[str]) -> None:
    # baton get with an out-of-range flag: one line on stderr, non-zero exit, no traceback
    assert main(["get", "x", "--redis-url", URL, "--concurrency", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--concurrency" in err and "Traceback" not in err


def test_readme_configuration_table_matches_settings() -> None:
    # The README's Configuration table has one row per setting, with its default, and nothing else
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, str] = {}
    for row in re.findall(r"^\| `([a-z_]+)`(?: / `([a-z_]+)`)? \| ([^|]+) \|", section, re.M):
        names = [n for n in row[:2] if n]
        defaults = [d.strip() for d in row[2].split(" / ")]
        for i, name in enumerate(names):
            assert name not in documented, f"{name} documented twice"
            documented[name] = defaults[i] if len(defaults) == len(names) else row[2].strip()
    assert set(documented) == {f.name for f in fields(Settings)}
    for f in fields(Settings):
        default = f.default
        if isinstance(default, bool):
            assert documented[f.name] == str(default).lower(), f.name
        elif isinstance(default, int | float) and documented[f.name][:1].isdigit():
            assert float(documented[f.name]) == default, f.name
        elif isinstance(default, str) and documented[f.name].startswith("`"):
            assert documented[f.name] == f"`{default}`", f.name


@pytest.mark.parametrize("args", [["--input", "{not json"], ["--wait", "-1"], ["--wait", "nan"]])
def test_submit_flags_are_checked_before_anything_runs(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # a bad --input or --wait is a usage error (exit 2, one message), not a traceback or a wait forever
    with pytest.raises(SystemExit) as exited:
        main(["submit", "echo", "--redis-url", URL, *args])
    assert exited.value.code == 2
    assert args[0] in capsys.readouterr().err


def test_unreachable_redis_is_one_line_without_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    closed = f"redis://ada:s3cret@127.0.0.1:{free_port()}"  # a free port: nothing listens there
    assert main(["get", "some-run", "--redis-url", closed]) == 1
    err = capsys.readouterr().err
    assert err.startswith("baton: Redis: ") and err.count("\n") == 1 and "s3cret" not in err, err


def test_a_url_of_the_wrong_type_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(redis_url=b"redis://ada:s3cret@h:1")  # type: ignore[arg-type]
    assert "BATON_REDIS_URL" in str(caught.value) and "s3cret" not in str(caught.value)
