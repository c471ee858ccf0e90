"""Worker labels: parsing, validation at every door, and what a run stores."""

from __future__ import annotations

import orjson
import pytest

from runtime.affinity import HARD_STICKY_TTL_S, NODE_LABEL, affinity_view, parse_labels, sticky_options
from runtime.errors import ConfigError, SubmissionError
from runtime.jobs import JobOptions
from runtime.keys import Keys
from runtime.settings import Settings
from runtime.stream_entries import parse_stream_entry
from runtime.submission import PlainSpecs, build_spec

JOBS = {"gpu": JobOptions(node_labels={"gpu": "a100"}, prefer_labels={"zone": "b"}, prefer_wait_s=2.5),
        "plain": JobOptions()}


def settings() -> Settings:
    return Settings(redis_url="redis://127.0.0.1:1")


def extra(spec_extra_json: str) -> dict[str, str]:
    return orjson.loads(spec_extra_json) if spec_extra_json else {}


def test_node_labels_parse_and_bad_ones_name_the_setting() -> None:
    assert Settings(labels="region=eu, gpu=a100").label_text == "gpu=a100,region=eu"
    for bad in ("gpu", "gpu=a 100", "a=b=c", f"{NODE_LABEL}=x"):
        with pytest.raises(ConfigError, match="BATON_LABELS"):
            Settings(labels=bad)
    assert parse_labels("") == {}


def test_a_run_stores_the_job_labels_unless_the_trigger_gives_its_own() -> None:
    s, keys = settings(), Keys()
    job_default = build_spec(s, keys, JOBS.get, job="gpu")
    assert extra(job_default.extra_json) == {"needs": "gpu=a100", "prefer": "zone=b", "prefer_ms": "2500"}
    own = build_spec(s, keys, JOBS.get, job="gpu", node_labels={"gpu": "h100", "ram": "1t"}, prefer_labels={})
    assert extra(own.extra_json) == {"needs": "gpu=h100,ram=1t"}
    # the short path of plain submissions carries the job's labels too
    plain = PlainSpecs(s, keys).spec(JOBS.get, "gpu", "1", "client")
    assert plain is not None and plain.extra_json == job_default.extra_json
    # runs without labels store nothing
    assert build_spec(s, keys, JOBS.get, job="plain").extra_json == ""


@pytest.mark.parametrize("options", [
    {"node_labels": {"gpu": 1}}, {"node_labels": ["gpu"]}, {"prefer_labels": {"a,b": "c"}},
    {"prefer_labels": {"a": "b"}, "prefer_wait_s": -1}, {"prefer_labels": {"a": "b"}, "prefer_wait_s": "soon"},
])
def test_bad_labels_are_rejected_at_the_door(options: dict[str, object]) -> None:
    with pytest.raises(SubmissionError) as caught:
        build_spec(settings(), Keys(), JOBS.get, job="plain", **options)
    assert caught.value.reason in ("bad_node_labels", "bad_prefer_labels", "bad_prefer_wait")


def test_stream_entries_take_labels_as_json_fields() -> None:
    spec = parse_stream_entry("1-1", {"job": "plain", "node_labels": '{"gpu":"a100"}',
                                      "prefer_labels": '{"zone":"b"}', "prefer_wait": "0.5"},
                              settings(), Keys(), JOBS.get)
    assert extra(spec.extra_json) == {"needs": "gpu=a100", "prefer": "zone=b", "prefer_ms": "500"}
    with pytest.raises(SubmissionError):
        parse_stream_entry("1-2", {"job": "plain", "node_labels": "gpu=a100"}, settings(), Keys(), JOBS.get)


def test_sticky_turns_into_labels_of_the_parents_node() -> None:
    hard = sticky_options({"sticky": True}, "n1")
    assert hard == {"node_labels": {NODE_LABEL: "n1"}, "ttl": HARD_STICKY_TTL_S}
    assert sticky_options({"sticky": "hard", "ttl": 5}, "n1")["ttl"] == 5
    assert sticky_options({"sticky": "soft"}, "n1") == {"prefer_labels": {NODE_LABEL: "n1"}}
    assert sticky_options({"sticky": False}, "n1") == {}
    with pytest.raises(SubmissionError):
        sticky_options({"sticky": "sometimes"}, "n1")


def test_the_native_view_says_why_a_run_waits() -> None:
    raw = {"needs": "gpu=a100", "prefer": "zone=b"}
    assert affinity_view(raw, "queued") == {"node_labels": {"gpu": "a100"}, "prefer_labels": {"zone": "b"},
                                            "queued_reason": "waiting_for_labels"}
    assert affinity_view(raw, "executing")["queued_reason"] is None
    assert affinity_view({}, "queued") == {"node_labels": {}, "prefer_labels": {}, "queued_reason": None}
