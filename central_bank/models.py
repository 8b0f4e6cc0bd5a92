"""SQLAlchemy models of the central bank database (schema made by migrations/central_bank)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cbdc.db import new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)
    name: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text, unique=True)
    certificate: Mapped[dict[str, Any]] = mapped_column(JSONB)
    certificate_signature: Mapped[str] = mapped_column(Text)
    quota: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text, default="active")
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Operation(Base):
    """One idempotent operator request (issuance, redemption, split, settlement, funding)."""

    __tablename__ = "operations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    counterparty_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    idempotency_key: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(Text)
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default="now()")


class Token(Base):
    """A row of the issuance database: one signed token, its owner and its fate."""

    __tablename__ = "tokens"

    serial: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    owner_operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    status: Mapped[str] = mapped_column(Text, default="live")
    issued_at: Mapped[datetime]
    signature: Mapped[str] = mapped_column(Text)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("operations.id"))
    spent_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("operations.id"))
    spent_at: Mapped[datetime | None]
