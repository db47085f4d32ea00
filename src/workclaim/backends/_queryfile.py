"""Loads named queries from a `.sql` file shipped beside a backend.

A query starts at a line `-- name: <name>`; comment lines after it describe it; the text up to the
next `-- name:` line is the query. Files are package data, read with `importlib.resources`.
"""

from __future__ import annotations

import re
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a query file into `{name: sql}`; a repeated name is an error."""
    queries: dict[str, str] = {}
    matches = list(_HEADER.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = "\n".join(
            line
            for line in text[match.end() : end].splitlines()
            if not line.lstrip().startswith("--")
        ).strip()
        name = match.group(1)
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.rstrip(";").strip()
    return queries


def load_queries(package: str, filename: str) -> dict[str, str]:
    """The named queries of `filename` in `package` (package data)."""
    return parse_queries(resources.files(package).joinpath(filename).read_text("utf-8"))


def load_text(package: str, filename: str) -> str:
    """A whole data file of `package` as text (a schema, a migration, a Lua script)."""
    return resources.files(package).joinpath(filename).read_text("utf-8")


def list_files(package: str, directory: str, suffix: str) -> list[str]:
    """Names of the files in `directory` of `package` ending in `suffix`, sorted."""
    folder = resources.files(package).joinpath(directory)
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(suffix))
