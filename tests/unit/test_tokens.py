"""The tokens file: fails closed, stays private, and its tokens may expire."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workclaim.errors import ConfigError
from workclaim.server.auth import TokenStore, new_token, parse_scopes, token_line

# Newer names are imported inside the tests that use them, so that every other test here runs
# (and shows its failure) against code that predates them.


def tokens_file(path: Path, *lines: str) -> Path:
    """A private tokens file holding `lines`."""
    path.write_text("".join(line + "\n" for line in lines))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("word", ["work:", "enqueue:"])
def test_a_scope_with_an_empty_queue_list_is_a_config_error(word: str) -> None:
    with pytest.raises(ConfigError, match="lists no queue"):
        parse_scopes([word])


def test_bare_and_star_scopes_still_mean_every_queue() -> None:
    assert parse_scopes(["work", "enqueue:*"]) == (frozenset("*"), frozenset("*"), False)


def test_a_tokens_file_that_breaks_refuses_every_token_until_fixed(tmp_path: Path) -> None:
    token = new_token()
    path = tokens_file(tmp_path / "tokens", token_line(token, "alice", ["work:*"]))
    store = TokenStore(path)
    assert store.lookup(token) is not None
    tokens_file(path, "this is not a tokens file")  # a revocation gone wrong
    with pytest.raises(ConfigError, match="line 1"):
        store.lookup(token)
    path.unlink()
    with pytest.raises(ConfigError, match="cannot read"):
        store.lookup(token)
    tokens_file(path, token_line(token, "alice", ["work:*"]))
    assert store.lookup(token) is not None


def test_a_tokens_file_open_to_others_is_refused(tmp_path: Path) -> None:
    token = new_token()
    path = tokens_file(tmp_path / "tokens", token_line(token, "alice", ["work:*"]))
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        TokenStore(path)
    path.chmod(0o600)
    store = TokenStore(path)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="open to group or others"):
        store.lookup(token)


def test_a_missing_tokens_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        TokenStore(tmp_path / "absent")


def test_tokens_expire(tmp_path: Path) -> None:
    from workclaim.server.auth import parse_duration

    old, fresh = new_token(), new_token()
    past = datetime.now(UTC) - timedelta(seconds=1)
    future = datetime.now(UTC) + parse_duration("30d")
    store = TokenStore(
        lines=token_line(old, "old", ["work"], past) + "\n" + token_line(fresh, "new", ["work"])
    )
    found = store.lookup(old)
    assert found is not None and found.expired()
    other = store.lookup(fresh)
    assert other is not None and not other.expired()
    assert not found.expired(now=past - timedelta(seconds=1))
    assert token_line(fresh, "new", ["work"], future).endswith(
        future.isoformat(timespec="seconds").replace("+00:00", "Z")
    )


@pytest.mark.parametrize("text", ["30", "d", "-1d", "0h", "3y", "99999999999999d"])
def test_bad_durations_are_refused(text: str) -> None:
    from workclaim.server.auth import parse_duration

    with pytest.raises(ConfigError):
        parse_duration(text)


# Runs `workclaim token create --append-to` under an audit hook that, before every file
# operation, records the mode of each file in the directory: a file created readable by others
# and chmod-ed afterwards shows up, as does a partly written tokens file.
_AUDITED = textwrap.dedent(
    """
    import os, stat, sys
    folder = sys.argv[1]
    seen = set()
    def hook(event, args):
        if event in ("open", "os.chmod", "os.rename", "os.replace", "os.remove"):
            for name in os.listdir(folder):
                try:
                    seen.add(stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode))
                except FileNotFoundError:
                    pass
    sys.addaudithook(hook)
    from workclaim.cli import main
    sys.argv = ["workclaim", "token", "create", "bob", "work:jobs",
                "--append-to", os.path.join(folder, "tokens")]
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, exc.code
    print(sorted(seen))
    """
)


def test_token_create_never_leaves_the_file_readable_by_others(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(2):  # creating the file, then adding to it
        out = subprocess.run(
            [sys.executable, "-c", _AUDITED, str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        modes = {int(x) for x in out.stdout.strip().splitlines()[-1].strip("[]").split(",") if x}
        assert all(mode & 0o077 == 0 for mode in modes), [oct(m) for m in modes]
    path = tmp_path / "tokens"
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(" bob " in line for line in lines)
    assert not TokenStore(path).empty


def test_token_create_expires() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "workclaim", "token", "create", "bob", "--expires", "30d"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    printed = dict(x.split(": ", 1) for x in out.stdout.splitlines() if ": " in x)
    principal = TokenStore(lines=printed["tokens file line"]).lookup(printed["token"])
    assert principal is not None and principal.expires_at is not None
    assert timedelta(days=29) < principal.expires_at - datetime.now(UTC) <= timedelta(days=30)
