"""Files and directories only their owner may read: keys, secrets, the network file, metrics.

Modes are set when the file or directory is made (`os.open(..., 0o600)`, `mkdir(mode=0o700)`),
never by a `chmod` afterwards: between a create with the default mode and the chmod, another
user could open the file and keep reading it. A file that already exists with a wider mode (a
data directory from an older version) is narrowed through its open descriptor before any new
content is written to it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner can enter (made 0700; narrowed if it was wider).
    Missing parents are made with the ordinary mode: only the last directory is private."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=PRIVATE_DIR)  # the umask can only narrow it further
    if path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_DIR)  # an older data directory: no new secret goes in before this
    return path


def write_private(path: Path, data: str | bytes, *, exclusive: bool = False) -> Path:
    """Write `data` to `path`, readable and writable by its owner only.

    `exclusive`: the file must not exist yet (O_EXCL; FileExistsError otherwise), for secrets
    made once. Otherwise the content is replaced atomically: written to a new 0600 file beside
    it, then renamed over it, so a reader sees the old content or the new, never half of it."""
    content = data.encode() if isinstance(data, str) else data
    if exclusive:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        _write_all(fd, content)
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600 by mkstemp
    try:
        os.fchmod(fd, PRIVATE_FILE)
        _write_all(fd, content)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _write_all(fd: int, content: bytes) -> None:
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def open_private_append(path: Path) -> int:
    """A descriptor appending to `path`, made 0600 if new (log files)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, PRIVATE_FILE)
    return fd
