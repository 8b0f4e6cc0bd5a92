"""Embedded PostgreSQL: a real server the project starts itself when no database URL is given.

It uses the machine's PostgreSQL server binaries when present (Debian puts them under
/usr/lib/postgresql/<version>/bin) and otherwise the binaries shipped in the `pgserver` wheel.
PostgreSQL refuses to run as root, so under root the cluster is owned by and run as an
unprivileged user (`postgres` if it exists, else one we create).

The server listens on 127.0.0.1 only, keeps its data in `<data_dir>/pg`, and uses durable
commits (fsync on, synchronous_commit on): benchmarks must measure the real thing.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_USER_FALLBACK = "cbdcpg"


def find_bin_dir() -> Path:
    candidates = [os.environ.get("CBDC_PG_BIN", "")]
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    try:
        import pgserver  # type: ignore[import-untyped]

        candidates.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin"))
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError(
        "no PostgreSQL server binaries found: install postgresql or `pip install pgserver`, "
        "or set CBDC_DATABASE_URL to an existing server"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """None when we may run postgres as ourselves; else the user to run it as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SERVER_USER_FALLBACK):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER_FALLBACK], check=True)
    return SERVER_USER_FALLBACK


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = 0

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.pgdata = self.data_dir / "pg"
        self.bin_dir = find_bin_dir()
        self.user = _server_user()
        if self.user and not self._reachable(self.data_dir):
            # Under root the server runs as an unprivileged user, who cannot enter a private
            # directory such as /root/...: keep the cluster in a world-searchable place instead.
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
            self.pgdata = Path(tempfile.gettempdir()) / f"cbdc-pg-{digest}" / "pg"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://cbdc@127.0.0.1:{self.port}/postgres"

    def _run(self, args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]

    def _chown(self, path: Path) -> None:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(exist_ok=True)
        self._chown(self.pgdata)
        self.pgdata.chmod(0o700)
        self._run(
            [
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                "cbdc",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
            ]
        )

    @staticmethod
    def _reachable(directory: Path) -> bool:
        """Can another user pass through every existing parent of `directory`?"""
        for parent in [directory, *directory.parents]:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                return False
        return True

    def running_port(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError, PermissionError):
            return None
        return port

    def start(self) -> str:
        """Start (or reuse) the server; return its server-level URL."""
        self.init()
        existing = self.running_port()
        if existing:
            self.port = existing
            return self.url
        self.port = self.port or free_port()
        log_file = self.pgdata / "server.log"
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories='{self.pgdata}' -c max_connections=300 "
            "-c shared_buffers=2GB -c fsync=on -c synchronous_commit=on "
            "-c max_wal_size=16GB -c checkpoint_timeout=30min "
            # Tables here go from empty to millions of rows in minutes (bulk seeding, load
            # tests): look for stale statistics every 10 s, not every minute.
            "-c autovacuum_naptime=10s"
        )
        self._run(
            [
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-l",
                str(log_file),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        return self.url

    def stop(self, *, immediate: bool = False) -> None:
        """Stop the server: "fast" (clean checkpoint), or "immediate" for a cluster about to be
        thrown away (tests), which skips writing out every dirty page."""
        if self.running_port() is None:
            return
        mode = "immediate" if immediate else "fast"
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(["pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop"])

    def destroy(self) -> None:
        """Stop the server and delete the cluster."""
        self.stop(immediate=True)
        shutil.rmtree(self.pgdata, ignore_errors=True)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("embedded PostgreSQL did not become ready")
