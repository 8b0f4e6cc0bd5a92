"""Embedded PostgreSQL: a real server the project starts itself when no database URL is given.

It uses the machine's PostgreSQL server binaries when present (Debian puts them under
/usr/lib/postgresql/<version>/bin) and otherwise the binaries shipped in the `pgserver` wheel.
PostgreSQL refuses to run as root, so under root the cluster is owned by and run as an
unprivileged user (`postgres` if it exists, else one we create).

The server listens on 127.0.0.1 only, keeps its data in `<data_dir>/pg`, and uses durable
commits (fsync on, synchronous_commit on): benchmarks must measure the real thing. Only a
throwaway cluster (the test suite's) is started with `durable=False`: fsync, synchronous_commit
and full_page_writes off, so a commit waits for no disk (a crash of the machine may lose or
corrupt it, which a test cluster deleted afterwards does not mind).

Nobody gets in without a password: every connection (TCP on loopback, and the Unix socket in
the cluster's own 0700 directory) must pass SCRAM-SHA-256. The superuser's password is made
once, at random, and kept in `<data_dir>/pg-superuser.secret` (0600, outside the cluster so
only the user running `cbdc` reads it, not the server's user), in libpq's password-file format;
`url` names that file (`?passfile=`), so the URL itself carries no secret. The services never
use it: each connects as its own role (`cbdc.db.create_service_database`). A cluster made by
an older version (`trust`) is given a password and the same rules the first time it starts.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from cbdc.files import write_private

log = logging.getLogger(__name__)

SERVER_USER_FALLBACK = "cbdcpg"
SUPERUSER = "cbdc"
SECRET_FILE = "pg-superuser.secret"
# Loopback and the Unix socket only, and never without a password.
PG_HBA = """# Written by cbdc: SCRAM-SHA-256 password logins only, from this machine only.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


def new_password() -> str:
    """A random password (URL-safe characters: no `:` or `\\` to escape in a password file)."""
    return secrets.token_urlsafe(32)


def pgpass_line(role: str, password: str) -> str:
    """One line of a libpq password file: this password for `role` on any host, port, database."""
    return f"*:*:*:{role}:{password}\n"


def read_pgpass_password(path: Path) -> str | None:
    """The password of the first entry of the libpq password file at `path` (None: no file)."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            return line.rsplit(":", 1)[1]
    return None


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
    # False only for throwaway clusters (tests): commits are not flushed to disk (module doc).
    durable: bool = True

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.pgdata = self.data_dir / "pg"
        self.secret_file = self.data_dir / SECRET_FILE
        self.bin_dir = find_bin_dir()
        self.user = _server_user()
        if self.user and not self._reachable(self.data_dir):
            # Under root the server runs as an unprivileged user, who cannot enter a private
            # directory such as /root/...: keep the cluster in a world-searchable place instead.
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
            self.pgdata = Path(tempfile.gettempdir()) / f"cbdc-pg-{digest}" / "pg"
        self._secure_on_start = False

    @property
    def url(self) -> str:
        """The superuser's server-level URL; the password comes from `secret_file`."""
        return URL.create(
            "postgresql+psycopg",
            username=SUPERUSER,
            host="127.0.0.1",
            port=self.port,
            database="postgres",
            query={"passfile": str(self.secret_file)},
        ).render_as_string(hide_password=False)

    def _run(self, args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]

    def _chown(self, path: Path) -> None:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _password(self) -> str:
        """The superuser's password, made (0600, never wider) the first time it is asked for."""
        password = read_pgpass_password(self.secret_file)
        if password is None:
            password = new_password()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            write_private(self.secret_file, pgpass_line(SUPERUSER, password), exclusive=True)
        return password

    def _hba_trusts(self) -> bool:
        """Does the cluster's pg_hba.conf let anyone in without a password (older versions)?"""
        hba = self.pgdata / "pg_hba.conf"
        if not hba.exists():
            return False
        for line in hba.read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if fields and fields[-1] in ("trust", "peer", "ident"):
                return True
        return False

    def init(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            if self._hba_trusts():
                self._secure_on_start = True  # a cluster from before passwords: see start()
                return
            if self.secret_file.exists():
                return
            if self.data_dir in self.pgdata.parents:
                raise RuntimeError(
                    f"the PostgreSQL cluster in {self.pgdata} needs its superuser's password, "
                    f"and {self.secret_file} is gone: start afresh (`cbdc up --fresh` wipes "
                    "the data directory)"
                )
            # A cluster kept outside the data directory (under root, in /tmp) whose data
            # directory was deleted: nobody can log in to it any more, and it holds nothing
            # another data directory owns. Make a new one.
            log.warning("discarding %s: its data directory lost the password", self.pgdata)
            self.destroy()
        password = self._password()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(exist_ok=True)
        self._chown(self.pgdata)
        self.pgdata.chmod(0o700)
        # initdb reads the password from a file the server's user can read: a private temporary
        # one, given to that user, removed straight after.
        fd, pwfile = tempfile.mkstemp(dir=self.pgdata.parent, prefix=".pwfile-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            self._chown(Path(pwfile))
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ]
            )
        finally:
            os.unlink(pwfile)
        self._write_hba()
        self._secure_on_start = True  # close the maintenance databases once it runs

    def _write_hba(self) -> None:
        # In place: the file keeps the owner (the server's user) and mode initdb gave it.
        (self.pgdata / "pg_hba.conf").write_text(PG_HBA)

    def _secure(self) -> None:
        """On a running server: the superuser has the password of `secret_file` (a cluster from
        before passwords had none), pg_hba.conf asks everyone for one, and ordinary roles may
        not connect to `postgres` or `template1` (each service's role enters its own database
        only: `cbdc.db.create_service_database`)."""
        import psycopg
        from psycopg import sql

        password = self._password()
        trusted = self._hba_trusts()
        params = {"host": "127.0.0.1", "port": self.port, "user": SUPERUSER, "dbname": "postgres"}
        if not trusted:
            params["passfile"] = str(self.secret_file)
        with psycopg.connect(**params, autocommit=True) as conn:  # type: ignore[arg-type]
            if trusted:
                verifier = conn.pgconn.encrypt_password(
                    password.encode(), SUPERUSER.encode(), b"scram-sha-256"
                )
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(SUPERUSER), sql.Literal(verifier.decode())
                    )
                )
                log.warning(
                    "%s: the cluster trusted local connections; it now wants a "
                    "password (kept in %s)",
                    self.pgdata,
                    self.secret_file,
                )
            conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC")
            if trusted:
                self._write_hba()
                conn.execute("SELECT pg_reload_conf()")
        self._secure_on_start = False

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
        """Start (or reuse) the server; return its server-level URL (the superuser's)."""
        self.init()
        existing = self.running_port()
        if existing:
            self.port = existing
            if self._secure_on_start:
                self._secure()
            return self.url
        self.port = self.port or free_port()
        log_file = self.pgdata / "server.log"
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories='{self.pgdata}' -c max_connections=300 "
            f"-c shared_buffers=2GB {self._durability_options()} "
            "-c max_wal_size=16GB -c checkpoint_timeout=30min "
            # Tables here go from empty to millions of rows in minutes (bulk seeding, load
            # tests): look for stale statistics every 10 s, not every minute.
            "-c autovacuum_naptime=10s -c password_encryption=scram-sha-256"
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
        if self._secure_on_start:
            self._secure()
        return self.url

    def _durability_options(self) -> str:
        if self.durable:
            return "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
        return "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"

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
