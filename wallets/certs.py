"""Certificate chain checks: central bank -> operator -> wallet. Needs only the central bank's
public key, so a payee can check a payer's wallet offline."""

from __future__ import annotations

from typing import Any

from cbdc.tokens import verify_document


def verify_wallet_chain(
    *,
    central_bank_public_key: str,
    operator_certificate: dict[str, Any],
    wallet_certificate: dict[str, Any],
) -> bool:
    """True when the CB signed the operator's certificate and that operator signed the wallet's,
    and the wallet id carries that operator's routing code."""
    if not verify_document(central_bank_public_key, operator_certificate):
        return False
    operator = operator_certificate["document"]
    if not verify_document(operator["public_key"], wallet_certificate):
        return False
    wallet = wallet_certificate["document"]
    return bool(
        wallet.get("operator") == operator.get("operator")
        and str(wallet.get("wallet_id", "")).startswith(operator["operator"])
    )
