"""Settings, backoff and URL handling fail fast with messages that say what to do."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from workclaim import Backoff, ConfigError, Queue, Settings
from workclaim.backends.sqlite.fsguard import filesystem_type, refuse_network_filesystem

MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 22 0:50 / /mnt/share rw,relatime - nfs4 server:/export rw
41 22 0:51 / /mnt/fuse rw - fuse.sshfs host:/ rw
42 22 0:52 / /mnt/smb rw - cifs //h/s rw
"""


def test_settings_validate() -> None:
    with pytest.raises(ConfigError):
        Settings(max_attempts=0)
    with pytest.raises(ConfigError):
        Settings(queue_max_attempts={"bad name": 3})
    with pytest.raises(ConfigError):
        Settings(timeout=0)
    s = Settings(queue_max_attempts={"emails": 9})
    assert (s.max_attempts_for("emails"), s.max_attempts_for("other")) == (9, 5)


def test_settings_from_env() -> None:
    env = {"WORKCLAIM_MAX_ATTEMPTS": "7", "WORKCLAIM_AUTO_MIGRATE": "off"}
    s = Settings.from_env(env)
    assert (s.max_attempts, s.auto_migrate) == (7, False)
    with pytest.raises(ConfigError, match="WORKCLAIM_TIMEOUT"):
        Settings.from_env({"WORKCLAIM_TIMEOUT": "soon"})


def test_backoff_grows_caps_and_jitters() -> None:
    plain = Backoff(base=1, factor=2, cap=10, jitter=0)
    assert [plain.delay(a) for a in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert plain.delay(10_000) == 10
    jittered = Backoff(base=8, factor=1, cap=8, jitter=0.5)
    rng = random.Random(1)
    assert all(4 <= jittered.delay(1, rng) <= 8 for _ in range(100))
    with pytest.raises(ConfigError):
        Backoff(jitter=2)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("work.db", "not a database URL"),
        ("mongodb://localhost/db", "unknown URL scheme"),
        ("sqlite://", "no path"),
        ("sqlite://host/x.db", "no host"),
        ("sqlite:///x.db?synchronous=sometimes", "synchronous"),
        ("sqlite:///x.db?colour=blue", "unknown sqlite URL option"),
        ("sqlite:////no/such/dir/x.db", "does not exist"),
    ],
)
def test_bad_urls_are_refused(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Queue(url)


def test_network_filesystems_are_detected() -> None:
    assert filesystem_type(Path("/mnt/share/q/work.db"), MOUNTINFO) == "nfs4"
    assert filesystem_type(Path("/home/me/work.db"), MOUNTINFO) == "ext4"
    for mount in ("/mnt/share", "/mnt/fuse", "/mnt/smb"):
        with pytest.raises(ConfigError, match="refusing a SQLite database"):
            refuse_network_filesystem(Path(mount) / "work.db", MOUNTINFO)
    refuse_network_filesystem(Path("/home/me/work.db"), MOUNTINFO)


def test_sqlite_database_file_is_private(tmp_path: Path) -> None:
    with Queue(f"sqlite:///{tmp_path / 'w.db'}") as q:
        q.enqueue("jobs", 1)
    assert (tmp_path / "w.db").stat().st_mode & 0o077 == 0
