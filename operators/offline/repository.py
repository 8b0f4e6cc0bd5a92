"""SQL of the offline area: devices, fundings, the adjudication log, claims, double spends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from cbdc.sqlarrays import int_array, text_array

DEVICE_COLUMNS = (
    "id, wallet_id, name, public_key, serial, certificate, certificate_signature, account_id, "
    "status, revoked_at, revoke_reason, fundings, last_sync_at, created_at"
)


def _json(value: Any) -> str:
    return json.dumps(value)


# ------------------------------------------------------------------ devices


def add_device(session: Session, **row: Any) -> None:
    session.execute(
        text(
            "INSERT INTO offline_devices (id, wallet_id, name, public_key, serial, certificate, "
            "certificate_signature, account_id, created_at) VALUES (:id, :wallet_id, :name, "
            ":public_key, :serial, CAST(:certificate AS jsonb), :certificate_signature, "
            ":account_id, :created_at)"
        ),
        {**row, "certificate": _json(row["certificate"])},
    )


def get_device(session: Session, device_id: str, *, lock: bool = False) -> Row[Any] | None:
    return session.execute(
        text(
            f"SELECT {DEVICE_COLUMNS} FROM offline_devices WHERE id = :id"
            + (" FOR UPDATE" if lock else "")
        ),
        {"id": device_id},
    ).one_or_none()


def device_by_key(session: Session, public_key: str) -> Row[Any] | None:
    return session.execute(
        text(f"SELECT {DEVICE_COLUMNS} FROM offline_devices WHERE public_key = :k"),
        {"k": public_key},
    ).one_or_none()


def device_wallets(session: Session, device_ids: Sequence[str]) -> dict[str, str]:
    """The wallet each of these devices is registered to (unknown ids left out)."""
    if not device_ids:
        return {}
    rows = session.execute(
        text("SELECT id, wallet_id FROM offline_devices WHERE id = ANY(CAST(:ids AS text[]))"),
        {"ids": text_array(sorted(set(device_ids)))},
    ).all()
    return {str(r.id): str(r.wallet_id) for r in rows}


def lock_devices(session: Session, device_ids: Sequence[str]) -> dict[str, Row[Any]]:
    """Lock the devices' rows in id order (every path that adjudicates or funds locks them
    before any account, so syncs that share payers serialise instead of deadlocking)."""
    if not device_ids:
        return {}
    rows = session.execute(
        text(
            f"SELECT {DEVICE_COLUMNS} FROM offline_devices WHERE id = ANY(CAST(:ids AS text[])) "
            "ORDER BY id FOR UPDATE"
        ),
        {"ids": text_array(sorted(set(device_ids)))},
    ).all()
    return {str(r.id): r for r in rows}


def revoke_device(session: Session, device_id: str, *, reason: str, now: datetime) -> bool:
    """Mark an active device revoked; False if it already was."""
    result = session.execute(
        text(
            "UPDATE offline_devices SET status = 'revoked', revoked_at = :now, "
            "revoke_reason = :reason WHERE id = :id AND status = 'active'"
        ),
        {"id": device_id, "reason": reason, "now": now},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_synced(session: Session, device_id: str, now: datetime) -> None:
    session.execute(
        text("UPDATE offline_devices SET last_sync_at = :now WHERE id = :id"),
        {"id": device_id, "now": now},
    )


# ------------------------------------------------------------------ fundings


def funding_by_nonce(session: Session, device_id: str, nonce: str) -> Row[Any] | None:
    return session.execute(
        text(
            "SELECT seq, amount, record, signature, order_id FROM offline_fundings "
            "WHERE device_id = :d AND nonce = :n"
        ),
        {"d": device_id, "n": nonce},
    ).one_or_none()


def add_funding(session: Session, **row: Any) -> None:
    session.execute(
        text(
            "INSERT INTO offline_fundings (device_id, seq, nonce, amount, record, signature, "
            "order_id, created_at) VALUES (:device_id, :seq, :nonce, :amount, "
            "CAST(:record AS jsonb), :signature, :order_id, :created_at)"
        ),
        {**row, "record": _json(row["record"])},
    )
    session.execute(
        text("UPDATE offline_devices SET fundings = :seq WHERE id = :device_id"),
        {"seq": row["seq"], "device_id": row["device_id"]},
    )


def fundings_of(session: Session, device_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        text("SELECT record, signature FROM offline_fundings WHERE device_id = :d ORDER BY seq"),
        {"d": device_id},
    ).all()
    return [{"document": r.record, "signature": r.signature} for r in rows]


# ------------------------------------------------------------------ adjudication log


def transfers_at(
    session: Session, pairs: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], list[Row[Any]]]:
    """The adjudicated transfers at these (payer device, counter) pairs."""
    out: dict[tuple[str, int], list[Row[Any]]] = {}
    if not pairs:
        return out
    rows = session.execute(
        text(
            "SELECT t.payer_device, t.counter, t.transfer_hash, t.outcome, t.detection, "
            "t.order_id, t.at FROM offline_transfers t JOIN unnest(CAST(:d AS text[]), "
            "CAST(:c AS bigint[])) AS p(device, counter) "
            "ON t.payer_device = p.device AND t.counter = p.counter"
        ),
        {
            "d": text_array([d for d, _ in pairs]),
            "c": int_array(c for _, c in pairs),
        },
    ).all()
    for r in rows:
        out.setdefault((str(r.payer_device), int(r.counter)), []).append(r)
    return out


def add_transfer(session: Session, **row: Any) -> None:
    session.execute(
        text(
            "INSERT INTO offline_transfers (payer_device, counter, transfer_hash, payee, "
            "payee_wallet, amount, at, transfer, signature, source, outcome, detection, taken, "
            "recovered, loss, order_id, created_at) VALUES (:payer_device, :counter, "
            ":transfer_hash, :payee, :payee_wallet, :amount, :at, CAST(:transfer AS jsonb), "
            ":signature, :source, :outcome, :detection, :taken, :recovered, :loss, :order_id, "
            ":created_at)"
        ),
        {**row, "transfer": _json(row["transfer"])},
    )


def unbook(session: Session, order_id: Any) -> None:
    """The offline payment of order `order_id` came back (a refund of a cross-operator
    settlement, `operators.settlement.refunds`): its recovery and loss are undone, in the
    adjudication log and in its device's double-spend row (the detection stays)."""
    row = session.execute(
        text(
            "UPDATE offline_transfers t SET outcome = 'returned', recovered = 0, loss = 0 "
            "FROM (SELECT payer_device, counter, transfer_hash, recovered, loss "
            "FROM offline_transfers WHERE order_id = :o FOR UPDATE) old "
            "WHERE t.payer_device = old.payer_device AND t.counter = old.counter "
            "AND t.transfer_hash = old.transfer_hash "
            "RETURNING t.payer_device, old.recovered, old.loss"
        ),
        {"o": order_id},
    ).first()
    if row is not None and (row.recovered or row.loss):
        session.execute(
            text(
                "UPDATE offline_double_spends SET loss = loss - :l, recovered = recovered - :r "
                "WHERE device_id = :d"
            ),
            {"d": row.payer_device, "l": int(row.loss), "r": int(row.recovered)},
        )


def transfers_of(session: Session, device_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT counter, transfer_hash, payee, payee_wallet, amount, at, source, outcome, "
            "detection, taken, recovered, loss, order_id FROM offline_transfers "
            "WHERE payer_device = :d ORDER BY counter, created_at"
        ),
        {"d": device_id},
    ).all()
    return [
        {
            "counter": int(r.counter),
            "hash": r.transfer_hash,
            "payee": r.payee,
            "payee_wallet": r.payee_wallet,
            "amount": int(r.amount),
            "at": r.at.isoformat(),
            "source": r.source,
            "outcome": r.outcome,
            "detection": r.detection,
            "taken": int(r.taken),
            "recovered": int(r.recovered),
            "loss": int(r.loss),
            "order_id": str(r.order_id),
        }
        for r in rows
    ]


def add_double_spend(session: Session, **row: Any) -> None:
    """Record a detection: the device's first makes its row, later ones add to it."""
    session.execute(
        text(
            "INSERT INTO offline_double_spends AS d (device_id, kind, detected_at, first_at, loss, "
            "recovered, transfer_hashes) VALUES (:device_id, :kind, :detected_at, :first_at, "
            ":loss, :recovered, CAST(:hashes AS text[])) "
            "ON CONFLICT (device_id) DO UPDATE SET detections = d.detections + 1, "
            "loss = d.loss + EXCLUDED.loss, recovered = d.recovered + EXCLUDED.recovered, "
            "first_at = least(d.first_at, EXCLUDED.first_at), "
            "transfer_hashes = d.transfer_hashes || EXCLUDED.transfer_hashes"
        ),
        {**row, "hashes": text_array(row["hashes"])},
    )


def double_spends_of(session: Session, device_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT kind, detections, detected_at, first_at, loss, recovered, transfer_hashes "
            "FROM offline_double_spends WHERE device_id = :d ORDER BY id"
        ),
        {"d": device_id},
    ).all()
    return [
        {
            "kind": r.kind,
            "detections": int(r.detections),
            "detected_at": r.detected_at.isoformat(),
            "first_at": r.first_at.isoformat(),
            "seconds_to_detection": (r.detected_at - r.first_at).total_seconds(),
            "loss": int(r.loss),
            "recovered": int(r.recovered),
            "transfer_hashes": list(r.transfer_hashes),
        }
        for r in rows
    ]


# ------------------------------------------------------------------ claims


def add_claim(session: Session, **row: Any) -> str | None:
    """Store a claim; None if it was new, else the status it already has."""
    inserted = session.execute(
        text(
            "INSERT INTO offline_claims (payer_device, counter, transfer_hash, payee_device, "
            "payment, status, created_at, updated_at) VALUES (:payer_device, :counter, "
            ":transfer_hash, :payee_device, CAST(:payment AS jsonb), 'forwarding', :now, :now) "
            "ON CONFLICT DO NOTHING RETURNING status"
        ),
        {**row, "payment": _json(row["payment"])},
    ).scalar()
    if inserted is not None:
        return None
    return str(
        session.execute(
            text(
                "SELECT status FROM offline_claims WHERE payer_device = :payer_device AND "
                "counter = :counter AND transfer_hash = :transfer_hash"
            ),
            row,
        ).scalar_one()
    )


def forwarding_claims(session: Session, keys: Sequence[Sequence[Any]]) -> list[Row[Any]]:
    """The claims named by `keys` ((payer device, counter, hash)) still being forwarded."""
    if not keys:
        return []
    return list(
        session.execute(
            text(
                "SELECT c.payer_device, c.counter, c.transfer_hash, c.payment "
                "FROM offline_claims c JOIN unnest(CAST(:d AS text[]), CAST(:c AS bigint[]), "
                "CAST(:h AS text[])) AS k(device, counter, hash) ON c.payer_device = k.device "
                "AND c.counter = k.counter AND c.transfer_hash = k.hash "
                "WHERE c.status = 'forwarding' ORDER BY c.created_at, c.payer_device, c.counter"
            ),
            {
                "d": text_array([str(k[0]) for k in keys]),
                "c": int_array(int(k[1]) for k in keys),
                "h": text_array([str(k[2]) for k in keys]),
            },
        ).all()
    )


def answer_claim(
    session: Session, *, transfer_hash: str, status: str, answer: dict[str, Any], now: datetime
) -> None:
    session.execute(
        text(
            "UPDATE offline_claims SET status = :s, answer = CAST(:a AS jsonb), "
            "order_id = CAST(:o AS uuid), updated_at = :now "
            "WHERE transfer_hash = :h AND status = 'forwarding'"
        ),
        {
            "s": status,
            "a": _json(answer),
            "o": answer.get("order_id"),
            "h": transfer_hash,
            "now": now,
        },
    )


def claims_of(session: Session, device_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT payer_device, counter, transfer_hash, status, answer, order_id, created_at "
            "FROM offline_claims WHERE payee_device = :d ORDER BY created_at"
        ),
        {"d": device_id},
    ).all()
    return [
        {
            "payer": r.payer_device,
            "counter": int(r.counter),
            "hash": r.transfer_hash,
            "status": r.status,
            "answer": r.answer,
            "order_id": str(r.order_id) if r.order_id else None,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ]


# ------------------------------------------------------------------ totals


def totals(session: Session) -> dict[str, int]:
    row = session.execute(
        text(
            "SELECT (SELECT count(*) FROM offline_devices) AS devices, "
            "(SELECT count(*) FROM offline_devices WHERE status = 'revoked') AS revoked, "
            "(SELECT coalesce(sum(balance), 0) FROM accounts WHERE kind = 'offline_purse') "
            "AS purse_value, "
            "(SELECT count(*) FROM accounts WHERE kind = 'offline_purse' AND balance > 0) "
            "AS purses_funded, "
            "(SELECT count(*) FROM accounts WHERE kind = 'offline_purse' AND balance < 0) "
            "AS negative_purses, "
            "(SELECT count(*) FROM offline_transfers) AS transfers, "
            "(SELECT coalesce(sum(amount), 0) FROM offline_transfers) AS transfer_value, "
            "(SELECT count(*) FROM offline_claims WHERE status = 'forwarding') "
            "AS claims_forwarding, "
            "(SELECT coalesce(sum((payment->'transfer'->>'amount')::bigint), 0) "
            " FROM offline_claims WHERE status = 'forwarding') AS claims_forwarding_value, "
            "(SELECT count(*) FROM offline_double_spends) AS double_spends, "
            "(SELECT coalesce(sum(loss), 0) FROM offline_double_spends) AS losses_recorded, "
            "(SELECT coalesce(sum(recovered), 0) FROM offline_double_spends) AS recovered, "
            "(SELECT coalesce(sum(loss), 0) FROM offline_transfers) AS transfer_losses"
        )
    ).one()
    return {k: int(v) for k, v in row._mapping.items()}
