"""Errors of the operator service (stable codes, see cbdc.errors)."""

from cbdc.errors import Conflict, DomainError, NotFound


class OperatorError(DomainError):
    code = "operator_error"


class UnknownWallet(NotFound):
    code = "unknown_wallet"
    title = "No such wallet"


class InvalidWalletId(OperatorError):
    code = "invalid_wallet_id"
    status = 422
    title = "Wallet id is malformed or its check digits are wrong"


class UnknownOperator(OperatorError):
    code = "unknown_payee_operator"
    status = 422
    title = "The payee's routing code names no registered operator"


class WrongOperator(OperatorError):
    code = "wrong_operator"
    status = 422
    title = "The wallet is not held at this operator"


class WalletNotActive(OperatorError):
    code = "wallet_not_active"
    status = 403
    title = "Wallet is frozen or closed"


class InPersonRequired(OperatorError):
    code = "class_requires_verification"
    status = 403
    title = "This wallet class needs identity verification in person by operator staff"


class EvidenceMissing(OperatorError):
    code = "evidence_missing"
    status = 422
    title = "The wallet class needs identity evidence that was not given"


class EvidenceInvalid(OperatorError):
    code = "evidence_invalid"
    status = 422
    title = "Identity evidence does not pass verification"


class LimitExceeded(OperatorError):
    status = 422
    code = "limit_exceeded"
    title = "A wallet class limit would be exceeded"


class SinglePaymentLimit(LimitExceeded):
    code = "single_payment_limit_exceeded"
    title = "Amount exceeds the wallet class's single-payment limit"


class DailyLimit(LimitExceeded):
    code = "daily_limit_exceeded"
    title = "Payment would exceed the wallet class's daily limit"


class AnnualLimit(LimitExceeded):
    code = "annual_limit_exceeded"
    title = "Payment would exceed the wallet class's annual limit"


class BalanceCap(LimitExceeded):
    code = "balance_cap_exceeded"
    title = "Wallet balance would exceed its class's balance cap"


class PayeeBalanceCap(LimitExceeded):
    code = "payee_balance_cap_exceeded"
    title = "Payee wallet's balance would exceed its class's balance cap"


class OrderExpired(OperatorError):
    code = "order_expired"
    status = 422
    title = "Order timestamp is too old or in the future"


class NonceReserved(OperatorError):
    code = "nonce_reserved"
    status = 422
    title = "The nonce is reserved for the operator's own orders (sched:, escrow:)"


class CurrencyMismatch(OperatorError):
    code = "currency_mismatch"
    status = 422
    title = "Order currency is not this network's currency"


class SelfPayment(OperatorError):
    code = "self_payment"
    status = 422
    title = "Payer and payee are the same wallet"


class VaultFloatInsufficient(OperatorError):
    code = "vault_float_insufficient"
    status = 503
    title = "Operator cannot obtain digital currency from the central bank right now"


class UnknownPayment(NotFound):
    code = "unknown_payment"
    title = "No such payment"


class SettlementRejected(Conflict):
    code = "settlement_rejected"
    title = "Inbound settlement is not acceptable"


class SettlementNotReady(Conflict):
    code = "settlement_not_ready"
    title = "The payment is still being cleared here; deliver the return again later"


class OrderRefused(Conflict):
    code = "order_already_refused"
    title = "This signed order was refused before; it cannot succeed later"


# Not problems a client sees: the outbox runner retries or fails the job (operators/jobs.py).
class TokensUnavailable(Exception):
    """Not enough unreserved tokens right now (others are mid-settlement): retry shortly."""


class BadCentralBankDocument(Exception):
    """A token or receipt from the central bank does not verify: never accept it."""
