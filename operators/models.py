"""SQLAlchemy models of an operator database (schema made by migrations/operator)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, SmallInteger, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cbdc.db import new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    identity: Mapped[dict[str, Any]] = mapped_column(JSONB)  # encrypted box, never clear text
    deposit_account_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Wallet(Base):
    __tablename__ = "wallets"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    account_id: Mapped[int] = mapped_column(BigInteger)
    wallet_class: Mapped[int] = mapped_column(SmallInteger)
    public_key: Mapped[str] = mapped_column(Text)
    certificate: Mapped[dict[str, Any]] = mapped_column(JSONB)
    certificate_signature: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    escrow: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, default="active")
    spent_day: Mapped[date | None]
    spent_day_total: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_year: Mapped[int | None] = mapped_column(Integer)
    spent_year_total: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Order(Base):
    """A signed customer order: payment, load or unload."""

    __tablename__ = "orders"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.id"))
    nonce: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    counterparty: Mapped[str | None] = mapped_column(Text)
    # None (all three): placed by the scenario engine for a simulated customer
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    signature: Mapped[str | None] = mapped_column(Text)
    order_hash: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    failure: Mapped[str | None] = mapped_column(Text)
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    updated_at: Mapped[datetime] = mapped_column(server_default="now()")


class VaultToken(Base):
    __tablename__ = "vault_tokens"

    serial: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="held")
    reserved_for: Mapped[str | None] = mapped_column(Text)
    received_via: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default="now()")
    released_at: Mapped[datetime | None]


class OutboxJob(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(server_default="now()")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
    done_at: Mapped[datetime | None]


class InboundSettlement(Base):
    __tablename__ = "inbound_settlements"

    settlement_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    payer_operator: Mapped[str] = mapped_column(String(8))
    reference: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    payee_wallet: Mapped[str] = mapped_column(Text)
    payer_alias: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(Text)
    receipt: Mapped[dict[str, Any]] = mapped_column(JSONB)
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")
