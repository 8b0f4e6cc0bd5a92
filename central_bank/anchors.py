"""The registration centre's record of operators' disclosure-log heads (anchors).

An operator's disclosure log lives in its own database, where a superuser could rewrite it and
recompute the hash chain. So after each disclosure the operator registers the log's new head,
(seq, hash) signed with its key (cbdc/disclosure_log.py `anchor_document`), here: outside its
database and beyond its reach. `cbdc audit` and `cbdc regulator log` compare every operator's log
with these anchors.

Registration is idempotent: the same (operator, seq, hash) again is accepted (the operator's
outbox may send it twice). Another hash for an anchored seq is refused with 409 and kept in
`disclosure_anchor_conflicts`, which the audit reports: the log was rewritten after the head was
anchored (or somebody holding the operator's key tried to move the anchor). Both tables are
append-only in the database (migration cb0006).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cbdc.clock import iso, utcnow
from cbdc.disclosure_log import anchor_signed
from cbdc.errors import Conflict, DomainError
from central_bank import repository as repo
from central_bank.models import Operator


class AnchorSignatureInvalid(DomainError):
    code = "disclosure_anchor_invalid"
    status = 422
    title = "The anchor is not signed by the operator's key"


class AnchorConflict(Conflict):
    code = "disclosure_anchor_conflict"
    title = "Another head is anchored for this entry of the disclosure log"


@dataclass(frozen=True)
class Registration:
    operator: str
    seq: int
    hash: str
    anchored_hash: str

    @property
    def conflict(self) -> bool:
        return self.hash != self.anchored_hash

    def answer(self) -> dict[str, Any]:
        """The response to the operator; raises AnchorConflict (after the conflict was stored:
        call it once the registration's transaction has committed)."""
        if self.conflict:
            raise AnchorConflict(
                f"{self.operator} #{self.seq} is anchored with hash {self.anchored_hash}, "
                f"not {self.hash}; the conflict is recorded"
            )
        return {"operator": self.operator, "seq": self.seq, "hash": self.hash, "anchored": True}


def register(
    session: Session, *, operator: Operator, seq: int, head: str, signature: str
) -> Registration:
    if not anchor_signed(operator.public_key, operator.code, seq, head, signature):
        raise AnchorSignatureInvalid(
            "signature: does not verify as the operator's anchor of this seq and hash"
        )
    now = utcnow()
    anchored = repo.add_disclosure_anchor(
        session, operator_id=operator.id, seq=seq, head=head, signature=signature, at=now
    )
    if anchored != head:
        repo.add_disclosure_anchor_conflict(
            session,
            operator_id=operator.id,
            seq=seq,
            head=head,
            anchored=anchored,
            signature=signature,
            at=now,
        )
    return Registration(operator=operator.code, seq=seq, hash=head, anchored_hash=anchored)


def listing(session: Session, *, operator: str | None) -> dict[str, Any]:
    """Every anchor (by operator, seq) and every refused conflicting registration."""
    return {
        "anchors": [
            {**row, "seq": int(row["seq"]), "received_at": iso(row["received_at"])}
            for row in repo.disclosure_anchors(session, operator=operator)
        ],
        "conflicts": [
            {**row, "seq": int(row["seq"]), "received_at": iso(row["received_at"])}
            for row in repo.disclosure_anchor_conflicts(session, operator=operator)
        ],
    }
