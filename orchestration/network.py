"""Lays out and runs a network on this machine: PostgreSQL (embedded unless a URL is given),
one database per service migrated to head, keys (and the bearer token of every service's
`/metrics`), the central bank and N operators as uvicorn
processes on loopback ports, operators registered and funded with reserves.

Each service's database has a role of its own (`cbdc.db.create_service_database`), whose
password file sits with the keys. Secrets are private from the moment they exist: `keys/`,
`metrics/` and `logs/` are made 0700, every file in `keys/` and `network.json` 0600 (see
`cbdc.files`), and the services run with umask 077, so what they write is theirs alone.

Used by `cbdc up`, `cbdc demo`, the tests and the benchmarks, so they all run the same thing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cbdc.crypto import SigningKey, b64e
from cbdc.db import create_service_database, migrate
from cbdc.envelope import CENTRAL_BANK_AUDIENCE
from cbdc.files import open_private_append, private_dir, write_private
from cbdc.http import RemoteError, SignedClient
from cbdc.pg import EmbeddedPostgres
from cbdc.policy import DEFAULT_POLICY_FILE
from cbdc.settings import (
    CentralBankNode,
    NetworkConfig,
    OperatorNode,
    RegulatorNode,
    Settings,
    network_file,
)
from regulator.client import RegulatorKeys


def operator_codes(count: int) -> list[str]:
    return [f"BK{chr(ord('A') + i)}1" for i in range(count)]


def operator_names(count: int) -> list[str]:
    names = ["Bank of Aurora", "Bailey Savings", "Civic Trust", "Delta Cooperative"]
    return [names[i] if i < len(names) else f"Operator {chr(ord('A') + i)}" for i in range(count)]


def metrics_token_file(data_dir: Path) -> Path:
    """The bearer token every service of the network at `data_dir` wants on GET /metrics."""
    return data_dir / "keys" / "metrics.token"


def metrics_dir(data_dir: Path, service: str) -> Path:
    """Where a spawned service's uvicorn workers keep their Prometheus multiprocess files."""
    return data_dir / "metrics" / service


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As servers bind: a port whose last connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Network:
    def __init__(self, settings: Settings, *, db_prefix: str | None = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.db_prefix = db_prefix or settings.db_prefix
        self.pg: EmbeddedPostgres | None = None
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.config: NetworkConfig | None = None

    # ------------------------------------------------------------ layout

    def reset(self) -> None:
        """Wipe this network's data directory (stopping its embedded server first)."""
        if not self.settings.database_url:
            EmbeddedPostgres(self.data_dir).destroy()
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)

    def server_url(self) -> str:
        """The server-level URL of the database server (an administrator's: the embedded
        server's superuser, or `CBDC_DATABASE_URL`), starting the embedded server if needed."""
        if self.settings.database_url:
            return self.settings.database_url
        self.pg = EmbeddedPostgres(self.data_dir)
        return self.pg.start()

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    def _key(self, name: str) -> tuple[Path, SigningKey]:
        path = self.keys_dir / f"{name}.key"
        if not path.exists():
            SigningKey.generate().save(path)  # 0600 from creation (cbdc.crypto.write_secret)
        return path, SigningKey.load(path)

    def _data_key(self, name: str) -> Path:
        """A 256-bit key for encrypting customer identity at rest."""
        path = self.keys_dir / f"{name}.datakey"
        if not path.exists():
            write_private(path, b64e(os.urandom(32)) + "\n", exclusive=True)
        return path

    @property
    def metrics_token_file(self) -> Path:
        """Scrapers (Prometheus' `credentials_file`, the benchmarks) read the token here."""
        return metrics_token_file(self.data_dir)

    def _metrics_token(self) -> Path:
        """Made once, 0600 from the start (never readable by others, even briefly)."""
        path = self.metrics_token_file
        if not path.exists():
            # no newline: the file is the credential
            write_private(path, secrets.token_urlsafe(32), exclusive=True)
        return path

    def prepare(self, *, fresh_databases: bool = False) -> NetworkConfig:
        s = self.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        private_dir(self.keys_dir)  # before any secret goes in
        server = self.server_url()

        def database(name: str, key_name: str, override: str | None) -> str:
            """The service's own database, as its own role (migrations too, so it owns
            everything in it); its password file is `keys/<key_name>.pgpass`."""
            if override:
                return override
            return create_service_database(
                server,
                f"{self.db_prefix}_{name}",
                passfile=self.keys_dir / f"{key_name}.pgpass",
                drop_existing=fresh_databases,
            )

        cb_db = database("central_bank", "central_bank", s.central_bank_database_url)
        migrate(cb_db, "central_bank")
        cb_key_file, cb_key = self._key("central_bank")
        admin_key_file, admin_key = self._key("admin")
        regulator_dir = private_dir(self.data_dir / "regulator")
        regulator = RegulatorKeys.load_or_create(regulator_dir)
        host = s.host
        operators = []
        for i, (code, name) in enumerate(
            zip(operator_codes(s.operators), operator_names(s.operators), strict=True)
        ):
            template = s.operator_database_url_template
            db = database(
                f"operator_{code.lower()}",
                f"operator_{code}",
                template.format(code=code) if template else None,
            )
            migrate(db, "operator")
            key_file, key = self._key(f"operator_{code}")
            port = s.port + 1 + i
            operators.append(
                OperatorNode(
                    code=code,
                    name=name,
                    url=f"http://{host}:{port}",
                    port=port,
                    database_url=db,
                    data_key_file=str(self._data_key(f"operator_{code}")),
                    key_file=str(key_file),
                    public_key=key.public_key,
                    reserves=s.operator_reserves,
                    quota=s.operator_quota,
                    vault_low_water=s.vault_low_water,
                    vault_target=s.vault_target,
                    vault_high_water=s.vault_high_water,
                )
            )
        self.config = NetworkConfig(
            currency=s.currency,
            currency_decimals=s.currency_decimals,
            settlement_mode=s.settlement_mode,
            net_interval_seconds=s.net_interval_seconds,
            net_max_items=s.net_max_items,
            policy_file=str((s.policy_file or DEFAULT_POLICY_FILE).resolve()),
            max_token_amount=s.max_token_amount,
            central_bank=CentralBankNode(
                url=f"http://{host}:{s.port}",
                port=s.port,
                database_url=cb_db,
                key_file=str(cb_key_file),
                public_key=cb_key.public_key,
                admin_key_file=str(admin_key_file),
                admin_public_key=admin_key.public_key,
            ),
            regulator=RegulatorNode(
                signing_public_key=regulator.signing.public_key,
                sealing_public_key=regulator.sealing.public_key,
                key_dir=str(regulator_dir),
            ),
            operators=operators,
            metrics_token_file=str(self._metrics_token()),
            demo_deposits=s.demo_deposits,
        )
        self.config.save(network_file(self.data_dir))
        return self.config

    # ------------------------------------------------------------ processes

    def _spawn(self, name: str, factory: str, port: int, extra_env: dict[str, str]) -> None:
        if not port_is_free(port):
            raise RuntimeError(
                f"port {port} on 127.0.0.1 is in use (another `cbdc up`?); set CBDC_PORT"
            )
        logs = private_dir(self.data_dir / "logs")
        # Prometheus multiprocess mode: the workers' metric files, emptied at every start (files
        # of dead processes would be summed in; counters start again, as after any restart).
        metrics = metrics_dir(self.data_dir, name)
        shutil.rmtree(metrics, ignore_errors=True)
        private_dir(metrics.parent)
        metrics.mkdir(mode=0o700)
        env = {
            **os.environ,
            "CBDC_NETWORK_FILE": str(network_file(self.data_dir)),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            **extra_env,
        }
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(self.settings.workers),
            "--log-level",
            "warning",
            "--no-access-log",
            # Keep idle connections longer than clients do (httpx drops its idle pooled
            # connections after 5 s, uvicorn's default is also 5 s): with equal timeouts a
            # client could reuse a connection the server was closing and get a reset.
            "--timeout-keep-alive",
            "30",
        ]
        log_fd = open_private_append(logs / f"{name}.log")
        try:
            process = subprocess.Popen(
                cmd,
                env=env,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=0o077,  # the metric files (and whatever else a service writes): 0600
            )
        finally:
            os.close(log_fd)  # the process has its own copy
        self.processes.append((name, process))

    def _wait_healthy(self, name: str, url: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        process = dict(self.processes)[name]
        while time.time() < deadline:
            if process.poll() is not None:
                log = (self.data_dir / "logs" / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} exited during start-up:\n{log}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not become healthy at {url}")

    def admin_client(self) -> SignedClient:
        assert self.config is not None
        cb = self.config.central_bank
        return SignedClient(
            httpx.Client(base_url=cb.url, timeout=30),
            key=SigningKey.load(Path(cb.admin_key_file)),
            key_id="admin",
            server_public_key=cb.public_key,
            audience=CENTRAL_BANK_AUDIENCE,
        )

    def register_operators(self) -> None:
        assert self.config is not None
        admin = self.admin_client()
        for node in self.config.operators:
            try:
                admin.request(
                    "POST",
                    "/v1/admin/operators",
                    {
                        "code": node.code,
                        "name": node.name,
                        "public_key": node.public_key,
                        "quota": node.quota,
                    },
                )
            except RemoteError as exc:
                if exc.code != "operator_exists":
                    raise
            admin.request(
                "POST",
                f"/v1/admin/operators/{node.code}/reserves",
                {"amount": node.reserves},
                idempotency_key=f"initial-reserves-{node.code}",
            )

    def start(self) -> NetworkConfig:
        config = self.config or self.prepare()
        cb = config.central_bank
        self._spawn("central_bank", "central_bank.app:app_from_env", cb.port, {})
        self._wait_healthy("central_bank", cb.url)
        self.register_operators()
        for node in config.operators:
            self._spawn(
                f"operator_{node.code}",
                "operators.app:app_from_env",
                node.port,
                {"CBDC_OPERATOR_CODE": node.code},
            )
        for node in config.operators:
            self._wait_healthy(f"operator_{node.code}", node.url)
        return config

    def kill(self, name: str) -> None:
        """Crash one service (SIGKILL, no clean shutdown): for outage and recovery tests."""
        for i, (proc_name, process) in enumerate(self.processes):
            if proc_name == name:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
                del self.processes[i]
                return
        raise KeyError(name)

    def restart(self, name: str) -> None:
        """Start a service that was killed, and wait until it is healthy."""
        assert self.config is not None
        if name == "central_bank":
            cb = self.config.central_bank
            self._spawn(name, "central_bank.app:app_from_env", cb.port, {})
            self._wait_healthy(name, cb.url)
            return
        code = name.removeprefix("operator_")
        node = self.config.operator(code)
        self._spawn(name, "operators.app:app_from_env", node.port, {"CBDC_OPERATOR_CODE": code})
        self._wait_healthy(name, node.url)

    def stop(self, *, stop_database: bool = True) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for _, process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()
        if stop_database and self.pg is not None:
            self.pg.stop()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
