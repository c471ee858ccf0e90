"""Every key is defined once (runtime/keys.py): Lua builds keys with its templates, the README shows them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from runtime.key_schema import families, layout_markdown
from runtime.keys import Partition
from runtime.lua_includes import INCLUDES, keys_lua
from runtime.lua_source import LUA_DIR, load_source
from runtime.scripts import SCRIPT_NAMES

README = Path(__file__).resolve().parents[2] / "README.md"
GENERATED_FILES = {"claim_reply.lua", "keys.lua", "run_spec.lua", "statuses.lua"}


def _hand_written_lua() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(LUA_DIR.rglob("*.lua")) if p.name not in GENERATED_FILES}


def test_no_script_builds_a_key_by_hand() -> None:
    # Given every hand-written script and include
    for name, text in _hand_written_lua().items():
        code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
        # Then no key is concatenated from the prefix or from a family's literal text
        assert not re.search(r"\bpfx\s*\.\.", code), f"{name} concatenates a key from the prefix"
        literals = {p for f in families() if f.scope == "partition" for p in f.parts if ":" in p}
        spelled = {lit for lit in literals if f"'{lit}" in code or f'"{lit}' in code}
        assert not spelled, f"{name} spells key families {spelled}: use K.<family> from includes/keys.lua"


def test_every_key_function_a_script_calls_is_generated() -> None:
    generated = {f.name for f in families() if f.scope == "partition"}
    for name, text in _hand_written_lua().items():
        used = set(re.findall(r"\bK\.(\w+)\(", text))
        assert used <= generated, f"{name} calls unknown key functions {used - generated}"


def test_every_script_that_builds_keys_includes_them_first() -> None:
    for name in SCRIPT_NAMES:
        source = load_source(name)
        if "K." in source.replace(keys_lua(), ""):
            assert source.index("local K = {}") < source.index("K.", source.index("local K = {}") + 12)


async def test_each_generated_key_function_builds_the_python_key(redis: Any) -> None:
    # Given sample arguments for every partition family
    include = (INCLUDES / "keys.lua").read_text()
    part = Partition(3, "{t:p3}:")
    for f in families():
        if f.scope != "partition":
            continue
        args = [f"a{i}|x" for i, _ in enumerate(f.params)]
        # When Lua builds the key with the generated function
        script = include + f"return K.{f.name}(ARGV[1]{''.join(f', ARGV[{i + 2}]' for i in range(len(args)))})"
        built = await redis.eval(script, 0, part.prefix, *args)
        # Then it is exactly the key Python builds
        member = getattr(part, f.name)
        expected = member(*args) if callable(member) else member
        assert (built.decode() if isinstance(built, bytes) else built) == expected, f.name


def test_the_readme_redis_layout_is_the_generated_table() -> None:
    block = re.search(r"<!-- redis-layout -->\n(.*?)\n<!-- /redis-layout -->", README.read_text(), re.S)
    assert block is not None and block.group(1) == layout_markdown(), "python -m runtime.readme writes it"


def test_every_key_family_names_its_redis_type() -> None:
    for f in families():
        assert f.redis_type in {"HASH", "ZSET", "SET", "STRING", "STREAM", "LIST", "channel"}, f.name
