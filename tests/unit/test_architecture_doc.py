"""The README's Architecture section names exactly the actors a node runs, and what each keeps across a restart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from actors.supervisor import Supervisor

README = Path(__file__).resolve().parents[2] / "README.md"


def _architecture() -> str:
    return README.read_text().split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]


async def test_every_actor_of_a_node_is_described_and_nothing_else(make_app: Any) -> None:
    supervisor = Supervisor(make_app(api_port=65000))
    # an actor class may run several times (one intake per submission stream): its class name counts
    running = {type(actor).name for actor in supervisor.actors}
    described = set(re.findall(r"^- \*\*(\w+)\*\*", _architecture(), re.M))
    assert described == running


async def test_what_survives_a_restart_is_what_the_readme_says(make_app: Any) -> None:
    # each actor that keeps state across a restart is named in the paragraph about clean restarts
    text = " ".join(_architecture().split())
    for actor in Supervisor(make_app(api_port=65000)).actors:
        if actor.survives:
            assert f"the {actor.name}'s" in text or f"the {actor.name.upper()}'s" in text, actor.name
