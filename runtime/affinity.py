"""Worker labels and affinity: which nodes may lease a run.

A node offers labels (the ``labels`` setting, ``gpu=a100,region=eu``) and,
implicitly, ``baton.node=<its id>``. A run may *require* labels
(``node_labels``: only a node offering all of them leases it) and *prefer*
others (``prefer_labels``: for ``prefer_wait`` seconds after the run became
ready only a node offering them leases it, then any node may). Both come from
the job's options or the trigger's, and are stored on the run record as
``needs``, ``prefer`` and ``prefer_ms`` (canonical ``k=v,k=v`` text), which the
claim script compares with the claiming node's labels (includes/affinity.lua).

A child triggered with ``sticky=True`` (or ``"hard"``) requires its parent's
node (``baton.node=<id>``); ``sticky="soft"`` prefers it. A hard-sticky child
whose node never comes back waits until its TTL (``HARD_STICKY_TTL_S`` unless
the trigger or job set one) and then ends ``expired``; a node restarted under
the same ``node_id`` (a StatefulSet pod name) picks it up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from .errors import ConfigError, SubmissionError
from .ranges import check, to_ms

__all__ = [
    "DEFAULT_PREFER_WAIT_S", "HARD_STICKY_TTL_S", "NODE_LABEL", "affinity_extra",
    "affinity_view", "check_job_affinity", "check_labels", "encode_labels", "jobs_needing_labels", "parse_labels",
    "sticky_options", "stored_labels",
]

#: The label every node offers implicitly: its own id (what sticky children ask for).
NODE_LABEL = "baton.node"
#: How long a run with preferred labels waits for such a node before any node may take it.
DEFAULT_PREFER_WAIT_S = 1.0
#: The TTL of a hard-sticky child that sets none: its node is presumed gone for good after this.
HARD_STICKY_TTL_S = 600.0
#: Most labels a node offers or a run asks for.
MAX_LABELS = 16
#: A label's key and value: no ',' or '=' (the stored form's separators), no spaces.
_LABEL_PART = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")


def check_labels(name: str, labels: Any) -> dict[str, str]:
    """Validate a label map (``{"gpu": "a100"}``); raises SubmissionError naming ``name``."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in labels.items()):
        raise SubmissionError(f"bad_{name}", f"{name} must be an object of string values")
    if len(labels) > MAX_LABELS:
        raise SubmissionError(f"bad_{name}", f"{name}: at most {MAX_LABELS} labels")
    for k, v in labels.items():
        if not (_LABEL_PART.fullmatch(k) and _LABEL_PART.fullmatch(v)):
            raise SubmissionError(f"bad_{name}", f"{name}: keys and values are 1-64 characters of "
                                                 f"A-Z a-z 0-9 _ . : / - (got {k!r}: {v!r})")
    return dict(labels)


def encode_labels(labels: Mapping[str, str]) -> str:
    """The stored form: ``k=v`` pairs sorted by key, comma-separated ('' for none)."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def parse_labels(text: str) -> dict[str, str]:
    """Labels from their stored or configured form (``gpu=a100,region=eu``); ConfigError when malformed."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or not _LABEL_PART.fullmatch(key) or not _LABEL_PART.fullmatch(value):
            raise ConfigError(f"label {part!r} is not key=value (1-64 characters of A-Z a-z 0-9 _ . : / -)")
        if key == NODE_LABEL:
            raise ConfigError(f"label {NODE_LABEL} is every node's own id; it cannot be configured")
        out[key] = value
    if len(out) > MAX_LABELS:
        raise ConfigError(f"at most {MAX_LABELS} labels")
    return out


def stored_labels(text: str | None) -> dict[str, str]:
    """A stored label field read back; tolerant (a stored run is always renderable)."""
    return dict(p.partition("=")[::2] for p in (text or "").split(",") if "=" in p)


def affinity_extra(job_options: Any, node_labels: Any, prefer_labels: Any, prefer_wait_s: Any) -> dict[str, str]:
    """The record fields (``needs``, ``prefer``, ``prefer_ms``) of a run: the trigger's labels, else the job's.

    Empty when the run asks for none (the common case costs nothing)."""
    needs = check_labels("node_labels", job_options.node_labels if node_labels is None else node_labels)
    prefer = check_labels("prefer_labels", job_options.prefer_labels if prefer_labels is None else prefer_labels)
    out: dict[str, str] = {}
    if needs:
        out["needs"] = encode_labels(needs)
    if prefer:
        wait = check("prefer_wait", job_options.prefer_wait_s if prefer_wait_s is None else prefer_wait_s)
        out["prefer"] = encode_labels(prefer)
        out["prefer_ms"] = str(to_ms(float(wait)))
    return out


def sticky_options(options: Mapping[str, Any], node_id: str) -> dict[str, Any]:
    """A child's trigger options with ``sticky`` turned into labels of its parent's node ``node_id``.

    ``sticky=True`` or ``"hard"``: only that node leases the child (with a TTL of
    HARD_STICKY_TTL_S unless one is set); ``"soft"``: it is preferred."""
    if "sticky" not in options:
        return dict(options)
    out = dict(options)
    mode = out.pop("sticky")
    if mode in (False, None):
        return out
    if mode is True or mode == "hard":
        out["node_labels"] = {**(out.get("node_labels") or {}), NODE_LABEL: node_id}
        out.setdefault("ttl", HARD_STICKY_TTL_S)
    elif mode == "soft":
        out["prefer_labels"] = {**(out.get("prefer_labels") or {}), NODE_LABEL: node_id}
    else:
        raise SubmissionError("bad_sticky", "sticky must be True, 'hard' or 'soft'")
    return out


def check_job_affinity(node_labels: Mapping[str, str], prefer_labels: Mapping[str, str], prefer_wait_s: float) -> None:
    """Validate a job's affinity options at definition time (ConfigError)."""
    try:
        check_labels("node_labels", node_labels)
        check_labels("prefer_labels", prefer_labels)
        check("prefer_wait", prefer_wait_s)
    except SubmissionError as exc:
        raise ConfigError(str(exc)) from exc


def jobs_needing_labels(registry: Mapping[Any, Any]) -> list[dict[str, str]]:
    """The required labels of each job of the registry (job -> options JSON) that has some."""
    out = []
    for blob in registry.values():
        try:
            labels = orjson.loads(blob).get("node_labels")
        except (orjson.JSONDecodeError, AttributeError):
            continue  # a registry entry of another version or garbled: not this gauge's business
        if isinstance(labels, dict) and labels:
            out.append({str(k): str(v) for k, v in labels.items()})
    return out


def affinity_view(raw: Mapping[str, str], status: str) -> dict[str, Any]:
    """The native run's affinity fields: required and preferred node labels, and why a queued run
    that requires labels waits (``waiting_for_labels``: only a node offering them may lease it)."""
    needs = stored_labels(raw.get("needs"))
    return {
        "node_labels": needs, "prefer_labels": stored_labels(raw.get("prefer")),
        "queued_reason": "waiting_for_labels" if needs and status == "queued" else None,
    }
