"""Everything an operator's service functions need besides a session: identity, keys, policy,
the central bank and peer clients, and the ids of its system accounts.

System accounts of an operator's ledger (see docs/architecture.md):

    tokens_held         contra (negative): minus the value of the tokens in the vault
    vault_float         digital currency not allocated to any customer
    wallet:<id>         one per wallet
    in_transit_out      paid out to other operators, not yet settled at the central bank
    returns_pending     received for a payee that cannot take it, being sent back
    redemption_pending  handed back to the central bank, not yet confirmed
    deposit:<customer>  simulated bank deposit (commercial bank money, not CBDC)
    deposits_contra     contra of all deposits
    cash_on_hand / cash_contra   banknotes taken in over the counter
    offline:<device>    one purse per offline device (kind offline_purse, operators/offline)
    escrow:<n>          one per escrow: value locked for a payee until a deadline (kind escrow,
                        operators/programmable; balance == amount - released - refunded)
    voucher:<n>         one per (programme, holder): purpose-bound value granted to a holder
                        (kind voucher, operators/programmable; == granted - spent - returned)
    fraud_losses / fraud_losses_contra   memorandum pair: offline double-spend losses this
                        operator carried (not CBDC: the CBDC side of a loss is the vault float)

Invariant: -tokens_held == vault_float + wallets + in_transit_out + returns_pending +
redemption_pending + offline purses + escrows + vouchers == value of the live tokens the
central bank registers to this operator.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.clock import Clock, utcnow
from cbdc.crypto import SigningKey
from cbdc.policy import Policy
from cbdc.settings import SettlementMode
from operators.clients import CentralBankClient, PeerClients

if TYPE_CHECKING:  # the cipher is the wallets area's, built in operators.state
    from operators.wallets.identity import IdentityCipher

SYSTEM_ACCOUNTS: dict[str, tuple[str, bool]] = {
    # code: (kind, allow_negative)
    "tokens_held": ("tokens_held", True),
    "vault_float": ("vault_float", False),
    "in_transit_out": ("in_transit", False),
    "returns_pending": ("in_transit", False),
    "redemption_pending": ("in_transit", False),
    "deposits_contra": ("deposits_contra", True),
    "cash_on_hand": ("cash", False),
    "cash_contra": ("cash_contra", True),
    "fraud_losses": ("fraud_loss", False),
    "fraud_losses_contra": ("fraud_loss_contra", True),
}
CBDC_KINDS = ("vault_float", "wallet", "in_transit", "offline_purse", "escrow", "voucher")


@dataclass
class WaterMarks:
    low: int
    target: int
    high: int


@dataclass
class OperatorContext:
    code: str
    name: str
    key: SigningKey
    policy: Policy
    currency: str
    decimals: int
    central_bank: CentralBankClient
    central_bank_public_key: str
    peers: PeerClients
    water_marks: WaterMarks
    # may change at run time (operators/settlement/netting.py)
    settlement_mode: SettlementMode = "rtgs"
    net_interval_seconds: float = 5.0  # submit a peer's open net items once the oldest is this old
    net_max_items: int = 1000  # ... or once this many wait
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    accounts: dict[str, int] = field(default_factory=dict)
    certificate: dict | None = None
    # What a refund of a cross-operator order of a kind must also undo in its area's own
    # records (order kind or body type -> fn, see operators.settlement.refunds), composed by
    # operators.state: settlement gives orders back without importing the areas that made them
    # (the offline area's adjudication log, the vouchers' totals).
    refund_hooks: dict[str, Callable[..., Any]] = field(default_factory=dict)
    identity_cipher: IdentityCipher | None = None
    regulator_signing_key: str | None = None
    regulator_sealing_key: str | None = None
    # The operator's one clock: every time its services and their SQL use (limits' days, AML
    # windows, order times, outbox due times and leases) comes from here. The wall clock, a
    # simulated one when the scenario engine drives the service, a shifted one in tests.
    clock: Clock = utcnow

    def now(self) -> datetime:
        return self.clock()

    def __post_init__(self) -> None:
        self._alias_secret = hashlib.sha256(
            b"cbdc-payer-alias:" + self.key.private_bytes().encode()
        ).digest()

    def bootstrap(self, session: Session) -> None:
        for code, (kind, allow_negative) in SYSTEM_ACCOUNTS.items():
            self.accounts[code] = ledger.ensure_account(
                session, code=code, kind=kind, allow_negative=allow_negative
            )

    def account(self, code: str) -> int:
        return self.accounts[code]

    def payer_alias(self, payer: str, payee: str) -> str:
        """What a payee sees instead of the payer's wallet id: stable for one payer and one
        payee, unlinkable across payees without the operator's secret."""
        digest = hmac.new(self._alias_secret, f"{payer}|{payee}".encode(), hashlib.sha256)
        return "anon-" + digest.hexdigest()[:16]
