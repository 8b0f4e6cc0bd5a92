"""Purpose-bound vouchers in the SDK: typed answers of the operator's programme and voucher
routes, and the `WalletClient` methods (`VoucherMethods`, mixed into it): create a programme
and grant vouchers (as the issuer), pay with a voucher (as a holder), show a programme."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cbdc.crypto import SigningKey
from wallets.orders import (
    programme_order,
    sign_order,
    voucher_grant_order,
    voucher_payment_order,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class VoucherHolding(_Model):
    """A voucher in the wallet view: what is left of a programme not expired."""

    programme: str
    name: str
    balance: int
    expires_at: str
    categories: list[str]


class ProgrammeHolder(_Model):
    holder: str
    granted: int
    spent: int
    returned: int
    balance: int


class Programme(_Model):
    programme_id: str
    issuer: str
    name: str
    categories: list[str]
    per_holder: int
    currency: str
    expires_at: str
    status: str  # active | expired
    granted: int
    spent: int
    returned: int
    outstanding: int
    created_at: str
    expired_at: str | None = None
    holders_count: int | None = None
    holders: list[ProgrammeHolder] = []
    grant: dict[str, Any] | None = None  # a grant's holder, amount, holder_granted
    replayed: bool = False


class VoucherPayment(_Model):
    payment_id: str
    payer: str
    payee: str
    amount: int
    currency: str
    route: str
    status: str
    failure: str | None = None
    voucher: int | None = None  # what is left of the voucher after it
    replayed: bool = False


class VoucherMethods:
    """The voucher calls of `WalletClient` (which provides these attributes)."""

    wallet_id: str
    key: SigningKey
    operator: Any

    def _request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        raise NotImplementedError  # WalletClient's

    def create_programme(
        self,
        *,
        name: str,
        categories: list[str],
        per_holder: int,
        expires_at: str,
        nonce: str | None = None,
    ) -> Programme:
        """A programme of vouchers this wallet issues (ISO `expires_at`, <= 366 days)."""
        order = programme_order(
            issuer=self.wallet_id,
            name=name,
            categories=categories,
            per_holder=per_holder,
            expires_at=expires_at,
            currency=self.operator.currency,
            nonce=nonce,
        )
        signed = sign_order(self.key, order)
        return Programme.model_validate(
            self._request("POST", "/v1/programmes", signed, signed=False)
        )

    def grant_voucher(
        self, programme: str, holder: str, amount: int, *, nonce: str | None = None
    ) -> Programme:
        """Fund `holder` (a wallet of this operator) with `amount` of the programme."""
        order = voucher_grant_order(programme=programme, holder=holder, amount=amount, nonce=nonce)
        signed = sign_order(self.key, order)
        return Programme.model_validate(
            self._request("POST", f"/v1/programmes/{programme}/grants", signed, signed=False)
        )

    def pay_with_voucher(
        self,
        payee: str,
        amount: int,
        *,
        programme: str,
        memo: str | None = None,
        nonce: str | None = None,
    ) -> VoucherPayment:
        """Pay an eligible merchant from this wallet's voucher of `programme`."""
        order = voucher_payment_order(
            payer=self.wallet_id,
            payee=payee,
            amount=amount,
            programme=programme,
            currency=self.operator.currency,
            memo=memo,
            nonce=nonce,
        )
        signed = sign_order(self.key, order)
        return VoucherPayment.model_validate(
            self._request("POST", "/v1/vouchers/payments", signed, signed=False)
        )

    def programme(self, programme_id: str) -> Programme:
        """The programme with its totals and holders (as its issuer; a holder sees its own)."""
        return Programme.model_validate(self._request("GET", f"/v1/programmes/{programme_id}"))

    def merchant_category(self, wallet_id: str) -> str | None:
        """The registered merchant category of a wallet at any operator (None: not one)."""
        answer = self._request("GET", f"/v1/merchants/{wallet_id}")
        return answer["category"]  # type: ignore[no-any-return]
