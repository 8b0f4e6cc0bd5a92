"""Configuration from the environment (prefix `CBDC_`) and the network file.

`Settings` is what a person configures (`CBDC_DATABASE_URL`, ports, number of operators...).
`NetworkConfig` is what `cbdc up` writes to `<data_dir>/network.json` once the network is laid
out: URLs, database URLs, key files, reserves. Services, the CLI and `cbdc audit` all read it,
so everyone agrees on the topology without a central directory service. It is written 0600:
it names key files and database logins (their passwords are in 0600 files under `keys/`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cbdc.files import write_private

# "rtgs": every cross-operator payment settles alone at the central bank, at once.
# "net": payments are netted per operator pair and settled in clearing cycles (operators/netting).
SettlementMode = Literal["rtgs", "net"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CBDC_", env_file=".env", extra="ignore")

    # A server-level URL (postgresql+psycopg://user:pw@host:port/postgres) of a user who may
    # create roles and databases: each service then gets a role of its own; without that
    # right, the services use this user (a warning says so). When unset, an embedded
    # PostgreSQL is started under `data_dir` (password logins only).
    database_url: str | None = None
    # Per-service overrides; `{code}` in the operator template is the operator's routing code.
    central_bank_database_url: str | None = None
    operator_database_url_template: str | None = None

    data_dir: Path = Path(".cbdc")
    db_prefix: str = Field(default="cbdc", pattern=r"^[a-z][a-z0-9_]{0,30}$")
    host: str = "127.0.0.1"
    port: int = 8700  # central bank; operators take the next ports
    operators: int = Field(default=2, ge=1, le=26)
    workers: int = Field(default=1, ge=1, le=16)
    currency: str = "CNY"
    currency_decimals: int = Field(default=2, ge=0, le=8)
    settlement_mode: SettlementMode = "rtgs"
    # Deferred net settlement: a clearing cycle closes every `net_interval_seconds`, or as soon
    # as `net_max_items` submitted payments wait; an operator submits a peer's open items when
    # the oldest is that old or that many wait.
    net_interval_seconds: float = Field(default=5, gt=0, le=86400)
    net_max_items: int = Field(default=1000, ge=1, le=1_000_000)
    policy_file: Path | None = None
    # The web wallet's "credit my bank deposit" button (POST /v1/wallets/{id}/demo-deposit):
    # a simulator convenience, off for a network that should look like a real one.
    demo_deposits: bool = True

    # Operator defaults, in minor units.
    operator_reserves: int = 1_000_000_000_00
    operator_quota: int = 500_000_000_00
    vault_low_water: int = 1_000_000_00
    vault_target: int = 5_000_000_00
    vault_high_water: int = 20_000_000_00
    max_token_amount: int = 50_000_00  # issuance mints tokens of at most this


class CentralBankNode(BaseModel):
    url: str
    port: int
    database_url: str
    key_file: str
    public_key: str
    admin_key_file: str
    admin_public_key: str


class RegulatorNode(BaseModel):
    """Public keys only: the private keys stay in `key_dir`, which no service reads."""

    signing_public_key: str
    sealing_public_key: str
    key_dir: str


class OperatorNode(BaseModel):
    code: str
    name: str
    url: str
    port: int
    database_url: str
    key_file: str
    data_key_file: str
    public_key: str
    reserves: int
    quota: int
    vault_low_water: int
    vault_target: int
    vault_high_water: int


class NetworkConfig(BaseModel):
    currency: str
    currency_decimals: int
    settlement_mode: SettlementMode
    policy_file: str
    net_interval_seconds: float = 5
    net_max_items: int = 1000
    max_token_amount: int
    central_bank: CentralBankNode
    regulator: RegulatorNode
    operators: list[OperatorNode]
    # Bearer token for every service's GET /metrics (a file, 0600, as Prometheus'
    # `credentials_file` wants it). None (a network file from before /metrics): metrics are off.
    metrics_token_file: str | None = None
    # Wallets may credit their own simulated bank deposit (the web wallet's demo button);
    # True for network files written before the option existed.
    demo_deposits: bool = True

    def metrics_token(self) -> str | None:
        if self.metrics_token_file is None:
            return None
        return Path(self.metrics_token_file).read_text().strip() or None

    def operator(self, code: str) -> OperatorNode:
        for node in self.operators:
            if node.code == code:
                return node
        raise KeyError(code)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(self.model_dump(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> NetworkConfig:
        return cls.model_validate_json(path.read_text())


def network_file(data_dir: Path) -> Path:
    return data_dir / "network.json"
