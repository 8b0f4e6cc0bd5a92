"""Identity over time: escrow versions kept for the regulator, and evidence uniqueness.

* **Versions.** Every escrow record a wallet is given (opening, class change, correction at
  the counter) is appended to `identity_versions` with the time it is in force from; nothing
  is overwritten (the table refuses UPDATE and DELETE). `wallets.escrow` is the current one.
  When a customer's identity changes, every wallet of that customer gets a new version, so a
  regulator reading any of them sees the identity as it was at each time.
* **Disclosure.** An order may name a time (`as_of`): the version in force then is released.
  Without one, every version is released with its validity period. The released document
  says which (`released`: "version-at-as-of" or "all-versions").
* **Uniqueness.** A wallet's verified ID number, phone and bank account are kept in
  `evidence_index` as blind indexes (operators/wallets/identity.py: `IdentityCipher.blind_index`),
  with the wallet's class. Per operator and per the policy's `[uniqueness]`: an ID number
  backs at most N wallets of a class, a phone at most M class IV wallets; an ID number belongs
  to one name and a bank account to one ID number. Evidence once verified stays indexed for
  its wallet after a downgrade (with the new class), so a downgrade frees no evidence for
  another holder. The counts are read under locks on the indexes (identity_repository).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cbdc.clock import iso
from cbdc.errors import ValidationFailed
from cbdc.policy import Uniqueness, WalletClass
from operators.context import OperatorContext
from operators.models import Wallet
from operators.wallets import identity_repository as irepo
from operators.wallets.identity import (
    PHONE_INDEX_PREFIX,
    ClassIvPerPhoneLimit,
    EvidenceOfOtherHolder,
    WalletsPerIdLimit,
    escrow_record,
    index_rows,
)

# ------------------------------------------------------------------ versions


def seal_version(
    session: Session,
    ctx: OperatorContext,
    *,
    wallet: Wallet,
    wallet_class: WalletClass,
    evidence: list[str],
    identity: dict[str, Any],
    changed_by: str,
) -> None:
    """Seal the wallet's identity to the regulator as its next version (nothing without a
    regulator key: then there is no escrow at all)."""
    if not ctx.regulator_sealing_key:
        return
    valid_from = ctx.now()
    version = irepo.next_version(session, wallet.id)
    wallet.escrow = escrow_record(
        regulator_sealing_key=ctx.regulator_sealing_key,
        wallet_id=wallet.id,
        operator=ctx.code,
        wallet_class=wallet_class,
        identity=identity,
        evidence=evidence,
        version=version,
        valid_from=valid_from,
        changed_by=changed_by,
    )
    session.flush()
    irepo.add_version(
        session,
        version=version,
        wallet_id=wallet.id,
        customer_id=wallet.customer_id,
        valid_from=valid_from,
        wallet_class=int(wallet_class),
        evidence=evidence,
        changed_by=changed_by,
        escrow=wallet.escrow,
    )


def released_identity(
    session: Session, *, wallet_id: str, current: dict[str, Any], as_of: datetime | None
) -> dict[str, Any]:
    """What a disclosure order releases: the version in force at `as_of`, or all versions
    with their validity periods. `escrow` is the released record (at `as_of`) or the current
    one, as before versions were kept."""
    rows = irepo.versions(session, wallet_id)
    periods = []
    for i, row in enumerate(rows):
        until = rows[i + 1]["valid_from"] if i + 1 < len(rows) else None
        periods.append(
            {
                "version": int(row["version"]),
                "valid_from": iso(row["valid_from"]),
                "valid_until": iso(until) if until is not None else None,
                "wallet_class": WalletClass(row["wallet_class"]).name,
                "evidence": list(row["evidence"]),
                "changed_by": row["changed_by"],
                "escrow": row["escrow"],
                "_from": row["valid_from"],
                "_until": until,
            }
        )
    if as_of is None:
        chosen = periods
        released = "all-versions"
    else:
        chosen = [
            p
            for p in periods
            if p["_from"] <= as_of and (p["_until"] is None or as_of < p["_until"])
        ]
        if not chosen:
            raise NoIdentityAtTime(
                f"wallet {wallet_id} had no identity on record at {iso(as_of)} "
                f"(first version from {periods[0]['valid_from'] if periods else 'never'})"
            )
        released = "version-at-as-of"
    for p in periods:
        del p["_from"], p["_until"]
    escrow = chosen[-1]["escrow"] if as_of is not None else current
    return {
        "released": released,
        "as_of": iso(as_of) if as_of is not None else None,
        "escrow": escrow,
        "versions": chosen,
    }


class NoIdentityAtTime(ValidationFailed):
    code = "no_identity_at_time"
    title = "The wallet had no identity on record at the time the order names"


# ------------------------------------------------------------------ uniqueness


def index_wallets(
    session: Session,
    ctx: OperatorContext,
    *,
    identity: dict[str, Any],
    wallets: Sequence[tuple[str, WalletClass, list[str]]],
) -> None:
    """(Re)index the verified evidence of wallets of one customer: (wallet id, class,
    evidence verified now). Kinds indexed before stay indexed (a downgrade keeps them)."""
    assert ctx.identity_cipher is not None
    wallet_ids = [w for w, _, _ in wallets]
    before = irepo.indexed_kinds(session, wallet_ids)
    planned = []
    for wallet_id, wallet_class, evidence in wallets:
        kinds = set(evidence) | before.get(wallet_id, set())
        planned.append((wallet_id, wallet_class, index_rows(ctx.identity_cipher, identity, kinds)))
    irepo.lock_index_keys(session, [(k, i) for _, _, rows in planned for k, i, _ in rows])
    irepo.delete_wallet_rows(session, wallet_ids)
    for wallet_id, wallet_class, rows in planned:
        _check(session, ctx.policy.uniqueness, wallet_class, rows)
        irepo.add_rows(session, [(k, i, wallet_id, int(wallet_class), h) for k, i, h in rows])


def _check(
    session: Session,
    limits: Uniqueness,
    wallet_class: WalletClass,
    rows: list[tuple[str, str, str | None]],
) -> None:
    for kind, index, holder in rows:
        if holder is not None and irepo.other_holder_exists(
            session, kind=kind, index=index, holder=holder
        ):
            raise EvidenceOfOtherHolder(_other_holder(kind))
        limit = _limit(limits, kind, wallet_class)
        if limit is not None and (
            irepo.count_wallets(session, kind=kind, index=index, wallet_class=int(wallet_class))
            >= limit
        ):
            raise _limit_error(kind, wallet_class, limit)


def _limit(limits: Uniqueness, kind: str, wallet_class: WalletClass) -> int | None:
    if kind == "id_number":
        return limits.wallets_per_id_per_class
    if kind == "phone" and wallet_class == WalletClass.IV:
        return limits.class_iv_per_phone
    return None


def _limit_error(kind: str, wallet_class: WalletClass, limit: int) -> Exception:
    if kind == "id_number":
        return WalletsPerIdLimit(
            f"this ID number already holds {limit} class {wallet_class.name} wallet(s) at this "
            "operator",
            limit=limit,
        )
    return ClassIvPerPhoneLimit(
        f"this phone number already holds {limit} class IV wallet(s) at this operator",
        limit=limit,
    )


def _other_holder(kind: str) -> str:
    if kind == "bank_account":
        return "customer.bank_account: this account is held under another ID number"
    return "customer.id_number: this ID number is held under another name"


def backfill_index(session: Session, ctx: OperatorContext, *, chunk: int = 5000) -> int:
    """Index the wallets opened before the index existed (op0010), as their evidence stands,
    without limit checks: they exist, and every later open or change is checked against
    them. Run when the service starts; returns how many wallets it indexed."""
    assert ctx.identity_cipher is not None
    irepo.lock_whole_index(session)
    reindex_legacy_phones(session, ctx, chunk=chunk)
    done, after = 0, ""
    while batch := irepo.unindexed_wallets(session, after=after, limit=chunk):
        out: list[tuple[str, str, str, int, str | None]] = []
        for row in batch:
            identity = ctx.identity_cipher.decrypt(
                row.identity, bound_to=f"customer:{row.customer_id}"
            )
            rows = index_rows(ctx.identity_cipher, identity, list(row.evidence))
            out += [(k, i, row.id, int(row.wallet_class), h) for k, i, h in rows]
        irepo.add_rows(session, out)
        done += len(batch)
        after = batch[-1].id
    return done


def reindex_legacy_phones(session: Session, ctx: OperatorContext, *, chunk: int = 5000) -> int:
    """Rewrite the phone rows indexed under the earlier normal form (digits without `+`, so
    `0013830230302` and `13830230302` were different numbers) to the E.164 form; run under
    the lock on the whole index by `backfill_index`. The rows keep their wallet and class
    (no limit check: the wallets exist). Returns how many rows it rewrote."""
    assert ctx.identity_cipher is not None
    done = 0
    while batch := irepo.legacy_phone_rows(session, prefix=PHONE_INDEX_PREFIX, limit=chunk):
        for row in batch:
            identity = ctx.identity_cipher.decrypt(
                row.identity, bound_to=f"customer:{row.customer_id}"
            )
            phone = identity.get("phone")
            new = ctx.identity_cipher.blind_index("phone", str(phone)) if phone else None
            irepo.replace_phone_index(
                session, wallet_id=row.wallet_id, old=row.blind_index, new=new
            )
        done += len(batch)
    return done


def index_new_wallets(
    session: Session,
    ctx: OperatorContext,
    wallets: Sequence[tuple[str, WalletClass, dict[str, Any], list[str]]],
) -> None:
    """Bulk onboarding: index many new wallets (id, class, identity, verified evidence) with
    the same rules, set-based under one lock on the whole index."""
    assert ctx.identity_cipher is not None
    limits = ctx.policy.uniqueness
    planned = [
        (wallet_id, wallet_class, index_rows(ctx.identity_cipher, identity, evidence))
        for wallet_id, wallet_class, identity, evidence in wallets
    ]
    irepo.lock_whole_index(session)
    counted = {
        (kind, index, int(cls))
        for _, cls, rows in planned
        for kind, index, _ in rows
        if _limit(limits, kind, cls) is not None
    }
    counts = irepo.counts_for(session, sorted(counted))
    bound = {(kind, index) for _, _, rows in planned for kind, index, h in rows if h is not None}
    holders = irepo.holders_for(session, sorted(bound))
    out = []
    for wallet_id, wallet_class, rows in planned:
        for kind, index, holder in rows:
            if holder is not None:
                seen = holders.setdefault((kind, index), set())
                if seen - {holder}:
                    raise EvidenceOfOtherHolder(f"wallet {wallet_id}: {_other_holder(kind)}")
                seen.add(holder)
            limit = _limit(limits, kind, wallet_class)
            if limit is not None:
                key = (kind, index, int(wallet_class))
                if counts.get(key, 0) >= limit:
                    raise _limit_error(kind, wallet_class, limit)
                counts[key] = counts.get(key, 0) + 1
            out.append((kind, index, wallet_id, int(wallet_class), holder))
    irepo.add_rows(session, out)
