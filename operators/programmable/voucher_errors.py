"""Errors of programmes, vouchers and merchant categories (stable problem codes,
docs/api.md)."""

from __future__ import annotations

from cbdc.errors import Conflict, DomainError, Forbidden, NotFound


class UnknownProgramme(NotFound):
    code = "unknown_programme"
    title = "No such programme at this operator"


class NotTheIssuer(Forbidden):
    code = "not_the_issuer"
    title = "Only the programme's issuer may do this"


class ProgrammeExpired(Conflict):
    code = "programme_expired"
    title = "The programme has expired: no more grants"


class VoucherExpired(Conflict):
    code = "voucher_expired"
    title = "The programme's vouchers have expired: what was unspent went back to the issuer"


class VoucherCapExceeded(Conflict):
    code = "voucher_cap_exceeded"
    title = "The grant would take the holder past the programme's per-holder cap"


class HolderNotHere(Conflict):
    code = "holder_not_here"
    title = "Voucher holders must be wallets of the programme's operator"


class NotEligible(Forbidden):
    code = "not_eligible"
    title = "The payee is not a merchant of a category the programme allows"


class InsufficientVoucherBalance(Conflict):
    code = "insufficient_voucher_balance"
    title = "The holder's voucher of this programme does not cover the amount"


class BadExpiry(DomainError):
    code = "programme_bad_expiry"
    status = 422
    title = "The expiry must be in the future and at most 366 days ahead"
