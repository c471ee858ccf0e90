"""What a message on the wake channel says (runtime/messages.py, wake_notice): a wake-up for a
partition, or a run due there; a notice it cannot read is a wake-up, never lost."""

from __future__ import annotations

import pytest

from runtime.messages import DueSoon, Wake, wake_notice


@pytest.mark.parametrize(("payload", "notice"), [
    ("{baton:p3}:", Wake("{baton:p3}:")),
    ("due 250 {baton:p3}:", DueSoon(250, "{baton:p3}:")),
    # a prefix may hold spaces (the deployment's prefix is free text): all after the time is the prefix
    ("due 0 {my app:p0}:", DueSoon(0, "{my app:p0}:")),
    # an older node's notice names no partition: every partition is promoted
    ("due 250", DueSoon(250, None)),
    # anything else is a wake-up: a claim too many at worst
    ("due soon", Wake("due soon")),
    ("due -5 {baton:p0}:", Wake("due -5 {baton:p0}:")),
    ("due 5 baton", Wake("due 5 baton")),
    ("", Wake("")),
])
def test_a_wake_channel_message_is_read_as_a_wake_up_or_a_due_notice(payload: str, notice: Wake | DueSoon) -> None:
    assert wake_notice(payload) == notice
