"""Errors of escrow (stable problem codes, docs/api.md); scheduled payments keep theirs in
`schedule_errors`."""

from __future__ import annotations

from cbdc.errors import Conflict, DomainError, Forbidden, NotFound


class UnknownEscrow(NotFound):
    code = "unknown_escrow"
    title = "No such escrow at this operator"


class NotTheArbiter(Forbidden):
    code = "not_the_arbiter"
    title = "Only the escrow's arbiter (or the payer when it has none) may do this"


class NotAParty(Forbidden):
    code = "not_an_escrow_party"
    title = "The signer is not a party to this escrow entitled to this action"


class EscrowExpired(Conflict):
    code = "escrow_expired"
    title = "The escrow's deadline has passed: what remains goes back to the payer"


class EscrowNotExpired(Conflict):
    code = "escrow_not_expired"
    title = "The escrow's deadline has not passed yet"


class EscrowClosed(Conflict):
    code = "escrow_closed"
    title = "Nothing remains in this escrow"


class AmountExceedsRemaining(Conflict):
    code = "escrow_amount_exceeds_remaining"
    title = "The amount is more than the escrow still holds"


class BadDeadline(DomainError):
    code = "escrow_bad_deadline"
    status = 422
    title = "The deadline must be in the future and within the policy's maximum"


class BadArbiter(DomainError):
    code = "escrow_bad_arbiter"
    status = 422
    title = "The arbiter must be an active wallet of the payer's operator, not the payer or payee"
