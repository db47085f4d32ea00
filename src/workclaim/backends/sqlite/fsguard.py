"""Refuses SQLite databases on network or FUSE file systems, where file locks do not hold.

SQLite's locking (and WAL's shared memory) needs one host's working POSIX locks; on NFS, SMB or
most FUSE mounts two writers can both believe they hold the lock and corrupt the database.
"""

from __future__ import annotations

from pathlib import Path

from workclaim.errors import ConfigError

NETWORK_FS_TYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "afs", "sshfs"}
)


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the file system holding `path`, from /proc/self/mountinfo (None if unknown)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = str(path)
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), right.split()[0])
    return None if best is None else best[1]


def is_network_fs(fstype: str) -> bool:
    """True for file systems whose locks SQLite cannot rely on."""
    return fstype in NETWORK_FS_TYPES or fstype.startswith(("fuse", "nfs"))


def refuse_network_filesystem(db_path: Path, mountinfo: str | None = None) -> None:
    """Raise `ConfigError` when the database's directory lives on a network or FUSE mount."""
    fstype = filesystem_type(db_path.parent.resolve(), mountinfo)
    if fstype is not None and is_network_fs(fstype):
        raise ConfigError(
            f"refusing a SQLite database on a {fstype} file system ({db_path}): its file locks "
            "are not reliable, so two workers could claim the same item or corrupt the file. "
            "Put the database on a local disk, or use PostgreSQL or Redis."
        )
