"""Load-test settings, read from `LOADTEST_*` environment variables (and `cbdc bench` options).

Locust users read the same settings, so a headless run, a distributed run (master + workers on
other terminals) and `cbdc bench` are configured the same way.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LoadtestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOADTEST_", extra="ignore")

    # Where the seeded wallets are listed (written by `python -m loadtest.seed`/`cbdc bench`).
    manifest: Path = Path(".cbdc/loadtest/manifest.json")
    # Seeding: wallets per operator, their opening balance (currency units) and the share of
    # anonymous (class IV) wallets; the others are class II (remote, verified).
    wallets: int = Field(default=10_000, ge=2)
    balance: int = Field(default=20_000, ge=1)
    anonymous_share: float = Field(default=0.2, ge=0, le=1)
    merchants: int = Field(default=100, ge=1)  # per operator, class II
    # Payment mix: the share of payments to a wallet at another operator; the share of large
    # payments (above class IV's single-payment limit: refused for anonymous payers).
    cross_share: float = Field(default=0.2, ge=0, le=1)
    large_share: float = Field(default=0.05, ge=0, le=1)
    small_min: int = Field(default=1, ge=1)  # currency units
    small_max: int = Field(default=200, ge=1)
    large_min: int = Field(default=3_000, ge=1)
    large_max: int = Field(default=8_000, ge=1)
    merchant_share: float = Field(default=0.3, ge=0, le=1)  # payments that go to a merchant
    # Users: wallet users pay, merchant users read balances and history; relative weights.
    wallet_weight: int = Field(default=10, ge=0)
    merchant_weight: int = Field(default=1, ge=0)
    # Seconds a user waits between tasks (0 = as fast as possible: closed-loop load).
    wait_min: float = Field(default=0.0, ge=0)
    wait_max: float = Field(default=0.0, ge=0)
    history_limit: int = Field(default=20, ge=1, le=500)
