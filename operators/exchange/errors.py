"""Refusals of the exchange area that no other area raises."""

from __future__ import annotations

from operators.errors import OperatorError


class CashOnHandInsufficient(OperatorError):
    """The counter pays banknotes out of the cash it took in (`cash_on_hand`); it cannot pay
    out more. The operator's shortage, not the order's: the consent is not recorded as refused
    (its nonce stays free), so the same request may be sent again once cash came in."""

    code = "cash_on_hand_insufficient"
    status = 409
    title = "The counter does not hold enough banknotes"
