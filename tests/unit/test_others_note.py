"""What a log line says goes on while a partition does not answer: the other partitions, or nothing (a
deployment of one partition said 'the other partitions go on', which an outside fault pass read as wrong)."""

from __future__ import annotations

from runtime import Baton, Settings
from runtime.partition_outages import others_note


def test_the_note_names_other_partitions_only_when_there_are_some_left() -> None:
    one, three = Baton(Settings(partitions=1)), Baton(Settings(partitions=3))
    assert others_note(one) == "no other is left"
    assert others_note(three) == others_note(three, 2) == "the other partitions go on"
    assert others_note(three, 3) == "no other is left"
