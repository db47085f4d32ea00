"""The Lua scripts, one per operation (`scripts/<op>.lua`), assembled and hashed once at import.

Each script opens with its KEYS/ARGV/reply header; `_common.lua` (helpers every script uses) is
placed after its shebang line, and `--@include _<part>.lua` lines pull in code shared by a few.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from workclaim.backends._queryfile import list_files, load_text

PACKAGE: Final = "workclaim.backends.redis"
_INCLUDE: Final = re.compile(r"^--@include (_[a-z_]+\.lua)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Script:
    """One operation's Lua source (shebang, shared helpers, body) and its SHA1."""

    name: str
    text: str
    sha: str


def load_scripts() -> dict[str, Script]:
    """Every `scripts/<op>.lua`, with `_common.lua` placed after its shebang line and each
    `--@include _<part>.lua` line replaced by that file (code shared by several scripts)."""
    common = load_text(PACKAGE, "scripts/_common.lua")
    scripts: dict[str, Script] = {}
    for filename in list_files(PACKAGE, "scripts", ".lua"):
        if filename.startswith("_"):
            continue
        body = load_text(PACKAGE, f"scripts/{filename}")
        shebang, _, rest = body.partition("\n")
        if not shebang.startswith("#!lua"):
            raise RuntimeError(f"scripts/{filename} must start with a #!lua line")
        rest = _INCLUDE.sub(lambda m: load_text(PACKAGE, f"scripts/{m[1]}"), rest)
        text = f"{shebang}\n{common}\n{rest}"
        name = filename.removesuffix(".lua")
        scripts[name] = Script(name, text, hashlib.sha1(text.encode("utf-8")).hexdigest())
    return scripts


SCRIPTS: Final = load_scripts()
