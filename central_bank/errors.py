"""Errors of the central bank service (stable codes, see cbdc.errors)."""

from cbdc.errors import Conflict, DomainError, NotFound


class CentralBankError(DomainError):
    code = "central_bank_error"


class UnknownOperator(NotFound):
    code = "unknown_operator"
    title = "No such operator"


class OperatorExists(Conflict):
    code = "operator_exists"
    title = "An operator with this code or key is already registered"


class OperatorSuspended(CentralBankError):
    code = "operator_suspended"
    status = 403
    title = "Operator is suspended"


class InsufficientReserves(CentralBankError):
    code = "insufficient_reserves"
    status = 422
    title = "Reserves do not cover this issuance"


class QuotaExceeded(CentralBankError):
    code = "issuance_quota_exceeded"
    status = 422
    title = "Issuance quota exceeded"


class TokenNotOwned(CentralBankError):
    code = "token_not_owned"
    status = 403
    title = "Token is not registered to the requesting operator"


class TokenAlreadySpent(Conflict):
    code = "double_spend"
    title = "Token was already spent or redeemed"


class UnknownToken(NotFound):
    code = "unknown_token"
    title = "No such token"


class AmountMismatch(CentralBankError):
    code = "amount_mismatch"
    status = 422
    title = "Token amounts do not add up"


class UnknownObligation(NotFound):
    code = "unknown_obligation"
    title = "No such clearing obligation"


class NotDebtor(CentralBankError):
    code = "not_debtor"
    status = 403
    title = "Only the obligation's debtor pays it"


class ObligationSettled(Conflict):
    code = "obligation_settled"
    title = "The clearing obligation is already settled"


class ObligationNotSettled(Conflict):
    code = "obligation_not_settled"
    title = "The clearing obligation is not settled yet"


class DuplicateClearingItem(Conflict):
    code = "duplicate_clearing_item"
    title = "A payment in this submission was already submitted for clearing"
