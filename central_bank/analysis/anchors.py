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

Append-only triggers stop the services' role, not a superuser of the cluster, who can switch
them off. So each new anchor also becomes the next link of its operator's anchor chain
(`disclosure_anchor_links`, migration cb0007): the link's hash covers the anchor and the link
before it, and the central bank signs every link with its own key, which is not in any database.
`GET /v1/disclosure-anchors` returns each anchor with its link, and `cbdc audit` verifies the
chain against the central bank's public key (cbdc/disclosure_log.py `verify_anchor_chain`):
an anchor edited or deleted inside the chain breaks it. Deleting the *last* anchors and their
links leaves a shorter chain that still verifies; the regulator's head file (the heads it got
back from its own disclosure orders) is what shows that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cbdc.clock import iso
from cbdc.crypto import SigningKey
from cbdc.disclosure_log import anchor_chain_document, anchor_link_entry, anchor_signed
from cbdc.errors import Conflict, DomainError
from cbdc.hashchain import GENESIS, link_hash
from central_bank.analysis import repository as repo
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


def link_pending(session: Session, *, operator: Operator, key: SigningKey, now: datetime) -> int:
    """Append every anchor of this operator not yet in its chain (in seq order) as the next
    links, each signed with the central bank's key; returns how many."""
    repo.lock_anchor_chain(session, operator.id)
    pending = repo.unlinked_disclosure_anchors(session, operator.id)
    n, previous = repo.anchor_chain_head(session, operator.id) or (0, GENESIS)
    for anchor in pending:
        n += 1
        entry = anchor_link_entry(
            operator.code, n, int(anchor["seq"]), str(anchor["hash"]), str(anchor["signature"])
        )
        link = link_hash(previous, entry)
        repo.add_anchor_link(
            session,
            operator_id=operator.id,
            n=n,
            seq=int(anchor["seq"]),
            prev_link=previous,
            link=link,
            signature=key.sign_json(anchor_chain_document(operator.code, n, link)),
            at=now,
        )
        previous = link
    return len(pending)


def register(
    session: Session,
    *,
    operator: Operator,
    seq: int,
    head: str,
    signature: str,
    key: SigningKey,
    now: datetime,
) -> Registration:
    if not anchor_signed(operator.public_key, operator.code, seq, head, signature):
        raise AnchorSignatureInvalid(
            "signature: does not verify as the operator's anchor of this seq and hash"
        )
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
    link_pending(session, operator=operator, key=key, now=now)
    return Registration(operator=operator.code, seq=seq, hash=head, anchored_hash=anchored)


def _link(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "n": int(row["n"]),
        "prev": row["prev_link"],
        "hash": row["link"],
        "signature": row["signature"],
    }


def listing(
    session: Session, *, operator: str | None, key: SigningKey, now: datetime
) -> dict[str, Any]:
    """Every anchor (by operator, seq) with its link in the operator's anchor chain (n, prev,
    hash and the central bank's signature), the last link of each operator's chain
    (`anchor_chains`: an anchor deleted with its link still there shows against it), and every
    refused conflicting registration.
    Anchors from before the chain existed (cb0007) are linked first."""
    for operator_id in repo.operators_with_unlinked_anchors(session):
        owner = session.get(Operator, operator_id)
        if owner is not None:
            link_pending(session, operator=owner, key=key, now=now)
    heads = repo.anchor_chain_heads(session, operator=operator)
    links = repo.anchor_links(session, operator=operator)
    return {
        "anchor_chains": heads,
        "anchors": [
            {
                **row,
                "seq": int(row["seq"]),
                "received_at": iso(row["received_at"]),
                "link": _link(links.get((str(row["operator"]), int(row["seq"])))),
            }
            for row in repo.disclosure_anchors(session, operator=operator)
        ],
        "conflicts": [
            {**row, "seq": int(row["seq"]), "received_at": iso(row["received_at"])}
            for row in repo.disclosure_anchor_conflicts(session, operator=operator)
        ],
    }
