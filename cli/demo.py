"""`cbdc demo`: a narrated end-to-end flow on a fresh network, over real HTTP.

issue -> open wallets of two classes at two operators -> fund deposits -> load -> pay within
and across operators -> hit a class limit (clear error) -> a payment the payee's operator must
return -> upgrade on new evidence -> a large payment raises a pseudonymous AML alert -> the
regulator de-anonymises with a signed disclosure order -> unload -> redeem -> history -> the
cross-tier audit.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from cbdc.crypto import SigningKey
from cbdc.envelope import CENTRAL_BANK_AUDIENCE, operator_audience
from cbdc.http import RemoteError, SignedClient
from cbdc.identity import make_bank_account, make_resident_id
from cbdc.money import format_amount
from cbdc.settings import NetworkConfig, Settings
from cli.console import audit_table, console
from orchestration.audit import run_audit
from orchestration.network import Network
from regulator.client import (
    RegulatorKeys,
    disclosure_order,
    open_escrow,
    send_disclosure,
    verify_log_rows,
)
from wallets.certs import verify_wallet_chain
from wallets.client import OperatorClient, WalletClient


class Narrator:
    def __init__(self, config: NetworkConfig) -> None:
        self.config = config
        self.step_no = 0

    def m(self, minor: int | None) -> str:
        if minor is None:
            return "unlimited"
        return format_amount(minor, self.config.currency_decimals, self.config.currency)

    def step(self, title: str) -> None:
        self.step_no += 1
        console.rule(f"[bold cyan]{self.step_no}. {title}")

    def say(self, text: str) -> None:
        console.print("   " + text)


def _staff(config: NetworkConfig, code: str) -> SignedClient:
    node = config.operator(code)
    return SignedClient(
        OperatorClient.connect(node.url).http,
        key=SigningKey.load(Path(node.key_file)),
        key_id=f"operator:{code}",
        audience=operator_audience(code),
    )


def _wait_for_status(
    wallet: WalletClient, payment_id: str, wanted: set[str], timeout: float = 15
) -> str:
    deadline = time.time() + timeout
    status = ""
    while time.time() < deadline:
        status = wallet.payment(payment_id).status
        if status in wanted:
            return status
        time.sleep(0.2)
    return status


ALICE_ID = make_resident_id("11010119900307123")
BOB_ID = make_resident_id("31010119850512456")
DAVE_ID = make_resident_id("44030019780101789")
DAVE_ACCOUNT = make_bank_account("622202000012345")


def _wait_for_alerts(client: SignedClient, wallet_id: str, timeout: float = 15) -> list[dict]:
    deadline = time.time() + timeout
    alerts: list[dict] = []
    while time.time() < deadline:
        alerts = client.request("GET", "/v1/analysis/alerts", params={"wallet": wallet_id})[
            "alerts"
        ]
        if alerts:
            return alerts
        time.sleep(0.2)
    return alerts


def run_demo(settings: Settings) -> int:
    # Its own databases ("<prefix>_demo_*"), dropped and re-made: a demo always starts fresh.
    network = Network(settings, db_prefix=f"{settings.db_prefix}_demo")
    network.reset()
    try:
        with console.status("starting a fresh network (PostgreSQL, central bank, 2 operators)"):
            network.prepare(fresh_databases=True)
            config = network.start()
        return _narrate(config, network)
    finally:
        with console.status("shutting the network down..."):
            network.stop()


def _narrate(config: NetworkConfig, network: Network) -> int:
    n = Narrator(config)
    a, b = config.operators[0], config.operators[1]
    admin = network.admin_client()

    n.step("Two tiers: a central bank and two operators")
    cb_url = config.central_bank.url
    n.say(f"{'central bank':>12}  {cb_url}  (API docs: {cb_url}/docs)")
    for node in config.operators:
        n.say(f"{node.code:>12}  {node.url}  (API docs: {node.url}/docs)")
    for node in config.operators:
        n.say(
            f"{node.code} registered with an Ed25519 certificate and reserves of "
            f"{n.m(node.reserves)} at the central bank"
        )

    n.step("Issuance: operators obtain digital currency against 100% reserves")
    for node in config.operators:
        staff = _staff(config, node.code)
        result = staff.request(
            "POST",
            "/v1/admin/vault/issue",
            {"amount": 200_000_00},
            idempotency_key=f"demo-issue-{node.code}",
        )
        vault = staff.request("GET", "/v1/admin/vault")
        n.say(
            f"{node.code} issuance {result['status']}: vault float "
            f"{n.m(vault['accounts']['vault_float'])} in "
            f"{vault['tokens'].get('held_count', 0)} signed tokens"
        )
    supply = admin.request("GET", "/v1/stats/money-supply")
    n.say(
        f"central bank: digital currency outstanding {n.m(supply['digital_currency_outstanding'])}"
        f", reserves {n.m(supply['reserves_total'])}"
    )

    n.step("Open wallets: class IV on a phone number, class II on ID + own bank account")
    op_a, op_b = OperatorClient.connect(a.url), OperatorClient.connect(b.url)
    alice = op_a.open_wallet(display_name="Alice", phone="+8613800000001")
    carol = op_a.open_wallet(display_name="Carol's Noodles", phone="+8613800000003")
    bob = op_b.open_wallet(
        display_name="Bob",
        phone="+8613800000002",
        id_number=BOB_ID,
        bank_account=make_bank_account("621700123456789"),
        wallet_class="II",
    )
    for label, w in (("Alice", alice), ("Carol (merchant)", carol), ("Bob", bob)):
        info = w.balance()
        n.say(
            f"{label:<17} {w.wallet_id}  class {info.wallet_class:<3} at {info.operator}  "
            f"cap {n.m(info.limits.balance_cap)}, per payment {n.m(info.limits.single_payment)}"
        )
    op_cert = op_a.info()["certificate"]
    ok = alice.opened is not None and verify_wallet_chain(
        central_bank_public_key=config.central_bank.public_key,
        operator_certificate=op_cert,
        wallet_certificate=alice.opened.certificate,
    )
    n.say(f"certificate chain central bank -> {a.code} -> Alice's wallet verifies offline: {ok}")

    n.step("Exchange: customers load wallets from their bank deposits")
    for w, code, amount in ((alice, a.code, 20_000_00), (bob, b.code, 100_000_00)):
        info = w.balance()
        _staff(config, code).request(
            "POST",
            f"/v1/admin/customers/{info.customer_id}/deposit",
            {"amount": amount},
            idempotency_key=str(uuid.uuid4()),
        )
    r = alice.load(3_000_00)
    n.say(
        f"Alice loads {n.m(3_000_00)}: wallet {n.m(r.wallet_balance)}, "
        f"deposit {n.m(r.deposit_balance)}"
    )
    r = bob.load(60_000_00)
    n.say(
        f"Bob loads {n.m(60_000_00)}: wallet {n.m(r.wallet_balance)}, "
        f"deposit {n.m(r.deposit_balance)}"
    )

    n.step("Retail payment within one operator")
    p = alice.pay(carol.wallet_id, 150_00, memo="noodles")
    n.say(f"Alice -> Carol {n.m(p.amount)}: {p.route}, {p.status}")
    seen = carol.history(limit=1).items[0]
    n.say(f"Carol sees the payer as {seen.counterparty!r}, not Alice's wallet id")

    n.step("Retail payment across operators (RTGS through the central bank)")
    p = alice.pay(bob.wallet_id, 1_200_00, memo="rent share")
    n.say(f"Alice@{a.code} -> Bob@{b.code} {n.m(p.amount)}: {p.route}, {p.status}")
    n.say(f"Bob's balance now {n.m(bob.balance().balance)}")

    n.step("Controllable anonymity: a class IV wallet hits its limit")
    try:
        alice.pay(carol.wallet_id, 2_500_00)
        n.say("[red]unexpectedly accepted[/]")
    except RemoteError as exc:
        n.say(
            f"Alice tries {n.m(2_500_00)} -> refused: "
            f"[bold]{exc.status} {exc.code}[/]: {exc.detail}"
        )
    p = bob.pay(alice.wallet_id, 9_000_00, memo="too much for a class IV wallet")
    n.say(
        f"Bob -> Alice {n.m(9_000_00)} (would exceed Alice's cap of {n.m(10_000_00)}): {p.status}"
    )
    status = _wait_for_status(bob, p.payment_id, {"returned", "failed"})
    n.say(
        f"{a.code} cannot credit it, so it sends the money back through the central bank: "
        f"Bob's payment is [bold]{status}[/]; Bob's balance {n.m(bob.balance().balance)}"
    )

    n.step("Upgrade: Alice verifies her identity remotely and becomes class III")
    info = alice.change_class("III", display_name="Alice", id_number=ALICE_ID)
    n.say(
        f"Alice is now class {info.wallet_class} (evidence {', '.join(info.evidence)}): "
        f"cap {n.m(info.limits.balance_cap)}, per payment {n.m(info.limits.single_payment)}"
    )
    alice.load(2_000_00)
    p = alice.pay(carol.wallet_id, 2_500_00, memo="catering")
    n.say(f"the {n.m(2_500_00)} payment refused before now goes through: {p.status}")

    n.step("Traceable for large value: a large payment raises a pseudonymous alert")
    dave = op_b.open_wallet(
        display_name="Dave Motors Ltd",
        phone="+8613800000004",
        id_number=DAVE_ID,
        bank_account=DAVE_ACCOUNT,
        wallet_class="I",
        staff_key=SigningKey.load(Path(b.key_file)),
    )
    p = bob.pay(dave.wallet_id, 50_000_00, memo="car")
    n.say(f"Bob -> Dave (class I, verified at the counter) {n.m(50_000_00)}: {p.status}")
    regulator = RegulatorKeys.load(Path(config.regulator.key_dir))
    reg_cb = SignedClient(
        OperatorClient.connect(config.central_bank.url).http,
        key=regulator.signing,
        key_id="regulator",
        server_public_key=config.central_bank.public_key,
        audience=CENTRAL_BANK_AUDIENCE,
    )
    alerts = _wait_for_alerts(reg_cb, bob.wallet_id)
    for alert in alerts:
        n.say(
            f"analysis centre sees: rule [bold]{alert['rule']}[/], wallet {alert['wallet']} at "
            f"{alert['operator']}, {n.m(alert['amount'])} (no name, no ID number)"
        )

    n.step("De-anonymisation under law: the regulator's signed disclosure order")
    signed = disclosure_order(
        regulator,
        wallet_id=bob.wallet_id,
        legal_basis="AML Law art. 35, case 2026-0042",
        requester="Financial Intelligence Unit",
    )
    released, head_problem = send_disclosure(
        op_b.http,
        b.code,
        signed,
        keys=regulator,
        key_dir=Path(config.regulator.key_dir),
        audience=operator_audience(b.code),
    )
    if head_problem:
        n.say(f"[bold red]DISCLOSURE LOG OF {b.code} NOT EXTENDED[/]: {head_problem}")
    record = open_escrow(regulator, released)
    n.say(
        f"{b.code} logged the order as entry #{released['log']['seq']} of its hash-chained "
        f"disclosure log, then released the sealed escrow record; the regulator keeps the "
        f"log's new head outside every database (its log_heads.json)"
    )
    n.say(
        f"only the regulator's private key opens it: {record['identity'].get('display_name')}"
        f", ID {record['identity'].get('id_number')}, class {record['wallet_class']}"
    )
    try:
        SignedClient(op_b.http).request("POST", "/v1/regulator/disclosures", signed, signed=False)
    except RemoteError as exc:
        n.say(f"the same order sent again is refused: {exc.code}")
    log = SignedClient(
        op_b.http, key=regulator.signing, key_id="regulator", audience=operator_audience(b.code)
    ).request("GET", "/v1/regulator/disclosure-log")
    n.say(
        f"the regulator re-verifies {b.code}'s log: "
        f"{'intact' if verify_log_rows(log['entries'])['ok'] else 'BROKEN'}"
    )

    n.step("Unload and redeem")
    r = alice.unload(1_000_00)
    n.say(
        f"Alice unloads {n.m(1_000_00)}: wallet {n.m(r.wallet_balance)}, "
        f"deposit {n.m(r.deposit_balance)}"
    )
    staff_a = _staff(config, a.code)
    result = staff_a.request(
        "POST", "/v1/admin/vault/redeem", {"amount": 50_000_00}, idempotency_key="demo-redeem"
    )
    position = admin.request("GET", "/v1/stats/money-supply")
    n.say(
        f"{a.code} redeems {n.m(50_000_00)} of vault float: {result['status']}; "
        f"outstanding now {n.m(position['digital_currency_outstanding'])}"
    )

    n.step("Alice's history")
    for item in alice.history(limit=10).items:
        n.say(
            f"{item.at[11:19]}  {item.kind:<12} {n.m(item.amount):>16}  "
            f"{item.counterparty or '':<22} {item.status}"
        )

    n.step("Audit: conservation of money across both tiers")
    report = run_audit(config)
    console.print(audit_table(report))
    if report["ok"]:
        console.print("[bold green]Every invariant holds: no money lost or created.[/]")
        return 0
    console.print("[bold red]An invariant is violated.[/]")
    return 1
