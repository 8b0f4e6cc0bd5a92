"""Offline use in a scenario run: device wallets that pay each other with no network, on the
real secure element and the operators' own offline service.

Devices. Every merchant, and a share (`[offline] devices`) of the households that adopt, hold a
device: a `wallets.offline.secure_element.SecureElement` made in-process, registered to the
holder's wallet by the operator's service (`operators.offline` `register_device`: the operator
signs its certificate with the class's offline limits, or the scenario's overrides) and funded
from the wallet (`fund`: a signed funding record the SE applies), up to `[offline] fund`.

Payments. A drawn payment is made offline when both sides hold a device and either the payer
chooses to (`[offline] share`) or the customers' network is down (`network_down`). The payer's
SE signs the transfer, the payee's SE checks it (chain, revocation list it last synced, limits,
counters): no database is involved. A payment the payer's SE refuses (purse spent, must sync,
over its per-payment limit) is made online instead while the network is up, and fails with the
SE's refusal code when it is down; one the payee's SE refuses fails with its code.

Sync. After its first offline payment (made or received) since it last synced, a device syncs
after a delay drawn from `[offline] sync_delay` (never while the network is down: then at the
end of the outage, in the order they fell due); a paying device that has gone half its
certificate's `max_days` without a sync also syncs at the start of a step while the network is
up: its signed batch goes to its operator's
`sync_device`, at the engine's simulated clock, and its SE takes the signed answer (ack and the
central bank's revocation list). The operator adjudicates, credits payees (other operators'
through forwarding and settlement, by the outbox jobs the engine already runs), detects double
spends, revokes and books losses: the engine only counts what its databases say.

Compromised devices (`[offline] compromised`, `attack`): a clone is a copy of the SE's sealed
state made right after its first funding; whenever the holder pays offline, the clone pays
someone else as much as it may (its per-payment limit, or what its copy of the purse holds),
with the same counters; it never syncs. A rollback device restores its sealed state as of its
last funding before every offline payment: each payment reuses the first counter after that
funding and spends a purse that never runs down. Compromised devices are filled to the cap.
Both attacks are caught when the device or a payee syncs.

Everything runs in the engine's thread, in time order within a slice, before the slice's
online payments (`Engine._payments`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TypeVar

from cbdc.errors import DomainError
from cbdc.offline import MUST_SYNC, OfflineRefusal
from cbdc.policy import OfflineLimits, Policy, WalletClass
from simulator import offline_draws as draws
from simulator import offline_metrics, settle
from simulator.network import SimNetwork
from simulator.offline_metrics import OfflineTally
from simulator.offline_service import fund_device, register, revocation_list, sync
from simulator.population import OperatorPopulation
from simulator.scenario import Scenario
from simulator.scenario_offline import Offline
from simulator.tally import StepTally
from wallets.offline.secure_element import SecureElement

T = TypeVar("T")
Item = tuple[float, str, str, str, int]  # (time, operator, payer wallet, payee wallet, amount)
NETWORK_DOWN = "network_down"


@dataclass
class Device:
    index: int  # registration order: ties in the sync queue break on it
    code: str  # its operator
    wallet: str
    se: SecureElement
    attack: str | None = None  # "clone" | "rollback" for a compromised device
    clone: SecureElement | None = None
    snapshot: dict[str, Any] | None = None  # rollback: sealed state after the last funding
    due: float | None = None  # simulated seconds of its next sync (None: nothing to sync)
    fundings: int = 0
    payer: bool = True  # households' devices pay; merchants' only take payments
    used: set[int] = field(default_factory=set)  # counters signed by any copy of this device


def policy_with_offline(policy: Policy, spec: Offline) -> Policy:
    """The operator's policy with the scenario's purse caps and per-payment limits (a per-payment
    limit above an overridden cap comes down to the cap)."""
    if policy.offline is None or not (spec.purse_cap or spec.per_payment):
        return policy
    limits: dict[WalletClass, OfflineLimits] = {}
    for wallet_class, current in policy.offline.items():
        cap = (spec.purse_cap or {}).get(wallet_class.name, current.purse_cap)
        per = (spec.per_payment or {}).get(wallet_class.name, current.per_payment)
        limits[wallet_class] = replace(current, purse_cap=cap, per_payment=min(per, cap))
    return replace(policy, offline=limits)


def _queues_work(answer: dict[str, Any]) -> bool:
    """Whether a sync queued outbox work: claims to forward, a detection (revocation and AML
    reports), or a payment to another operator's wallet to settle."""
    outcomes = {str(line.get("outcome")) for line in answer.get("sent") or []}
    outcomes |= {str(line.get("status")) for line in answer.get("received") or []}
    return bool(outcomes & {"forwarding", "double_spend", "pending_settlement"})


def network_back(down: Sequence[tuple[float, float]], t: float) -> float:
    """When the customers' network is up again, seen from `t`, given its outages [from, until)
    (`t` itself if it is up; overlapping or adjoining outages count as one)."""
    back = t
    for start, until in sorted(down):
        if start <= back < until:
            back = until
    return back


class OfflineWorld:
    def __init__(
        self, net: SimNetwork, scenario: Scenario, populations: dict[str, OperatorPopulation]
    ) -> None:
        self.net = net
        self.spec = scenario.offline or Offline.model_validate({"devices": 0.0})
        self.enabled = scenario.offline is not None
        self.populations = populations
        self.rng = draws.offline_rng(scenario.meta.seed)
        self.currency = scenario.meta.currency
        self.devices: dict[str, Device] = {}  # wallet id -> its device
        self.decided: set[str] = set()  # household wallets drawn for a device already
        self.down: list[tuple[float, float]] = []  # customers' network down [from, until)
        self.found: dict[str, dict[str, int]] = {}  # detections so far, per operator
        # The central bank's revocation list per operator, fetched once and kept until outbox
        # jobs run (revocations reach the central bank by them).
        self.lists: dict[str, dict[str, Any]] = {}
        self.tally = OfflineTally(net.codes)
        if self.enabled:
            for code in net.codes:
                net.set_policy(code, policy_with_offline(net.policy(code), self.spec))

    # ------------------------------------------------------------ the network

    def network_down(self, at: float, length: float) -> None:
        """The customers' network is down from `at` for `length`."""
        self.down.append((at, at + length))

    def is_down(self, t: float) -> bool:
        return self.back_at(t) > t

    def back_at(self, t: float) -> float:
        return network_back(self.down, t)

    # ------------------------------------------------------------ devices

    def _run(self, code: str, at: float, work: Callable[..., T], **kwargs: Any) -> T:
        """One call of `simulator.offline_service` at simulated time `at`."""
        self.net.clock.seconds = at
        return work(self.net.state(code), **kwargs)

    def register_new(self, at: float) -> None:
        """Devices for merchants and newly adopted households (in a fixed order), and the
        first funding of devices that could not be funded yet."""
        if not self.enabled or self.is_down(at):
            return
        for code in self.net.codes:
            if not self.net.up(code):
                continue
            pop = self.populations[code]
            for wallet in pop.merchant_wallets:
                if wallet not in self.devices:  # merchants only take payments: never funded
                    self._register(code, wallet, at, compromised=False, payer=False)
            for wallet in pop.adopted_wallets:
                if wallet in self.decided:
                    continue
                self.decided.add(wallet)
                if draws.holds_device(self.rng, self.spec.devices):
                    bad = draws.compromised(self.rng, self.spec.compromised)
                    self._register(code, wallet, at, compromised=bad)
        now = self.net.clock.epoch + timedelta(seconds=at)
        for device in self.devices.values():
            if not device.payer or not self.net.up(device.code):
                continue
            if device.fundings == 0:
                self._top_up(device, at)
            # a phone that is online keeps its device from having to sync before it pays:
            # half its offline days gone, it syncs now (a clone never does)
            half = timedelta(days=device.se.limits.max_days) / 2
            if device.due is None and now - device.se.last_sync_at >= half:
                device.due = at

    def _register(
        self, code: str, wallet: str, at: float, *, compromised: bool, payer: bool = True
    ) -> None:
        se = SecureElement.generate(self.currency)
        answer = self._run(code, at, register, wallet_id=wallet, public_key=se.public_key)
        se.install(
            answer["certificate"], answer["operator_certificate"], answer["central_bank_public_key"]
        )
        device = Device(len(self.devices), code, wallet, se, payer=payer)
        if compromised:
            device.attack = self.spec.attack
            self.tally.compromised[code] += 1
        self.devices[wallet] = device
        self.tally.registered[code] += 1

    def _top_up(self, device: Device, at: float) -> None:
        """Fund the purse up to `[offline] fund` (or the cap) from the wallet, as far as the
        wallet's balance goes, once it has fallen below half of that. An attacker fills the
        purse to the cap."""
        if not device.payer:
            return
        limits = device.se.limits
        target = min(self.spec.fund or limits.purse_cap, limits.purse_cap)
        if device.attack is not None:
            target = limits.purse_cap
        want = target - device.se.purse
        if want <= 0 or (device.fundings and device.se.purse * 2 >= target):
            return
        device.fundings += 1
        nonce = f"simfund-{device.index}-{device.fundings}"
        try:
            record = self._run(
                device.code, at, fund_device, device=device.se, amount=want, nonce=nonce
            )
        except DomainError as exc:
            device.fundings -= 1
            self.tally.refusal(device.code, f"fund.{exc.code}")
            return
        if record is None:  # nothing in the wallet
            device.fundings -= 1
            return
        device.se.apply_funding(record)
        if device.attack == "clone" and device.clone is None:
            device.clone = device.se.clone()  # the attacker copies the funded purse
        if device.attack == "rollback":
            device.snapshot = device.se.state()

    # ------------------------------------------------------------ a slice of payments

    def run_slice(self, chunk: Sequence[Item], end: float, tally: StepTally) -> list[Item]:
        """Make the slice's offline payments and the syncs that fall due in it, in time order;
        return the payments to make online (in time order)."""
        self.lists.clear()
        choices = draws.offline_choices(self.rng, len(chunk), self.spec.share)
        online: list[Item] = []
        for item, chosen in zip(chunk, choices, strict=True):
            t, code, payer, payee, amount = item
            self._sync_due(until=t)
            down = self.is_down(t)
            payer_dev, payee_dev = self.devices.get(payer), self.devices.get(payee)
            if payer_dev is None or payee_dev is None or not (chosen or down):
                if down:
                    tally.failed[code] += 1
                    tally.failed_by_reason[NETWORK_DOWN] += 1
                else:
                    online.append(item)
                continue
            outcome = self._pay(payer_dev, payee_dev, amount, t)
            if outcome is None:
                tally.ok[code] += 1
            elif down:
                tally.failed[code] += 1
                tally.failed_by_reason[outcome] += 1
            else:
                online.append(item)  # the payer's SE said no: paid online instead
                self.tally.fallbacks[code] += 1
        self._sync_due(until=end)
        return online

    def _pay(self, payer: Device, payee: Device, amount: int, t: float) -> str | None:
        """One offline payment; None if the payee's SE took it, else the refusal code."""
        now = self.net.clock.epoch + timedelta(seconds=t)
        if payer.snapshot is not None and payer.se.counter > payer.snapshot["counter"]:
            payer.se = SecureElement.from_state(payer.snapshot)  # the rollback attack
            self.tally.rollbacks[payer.code] += 1
        before = payer.se.state()
        try:
            payment = payer.se.pay(payee.se.device_id, payee.wallet, amount, now)
        except OfflineRefusal as refusal:
            if refusal.code == MUST_SYNC and not self.is_down(t):
                payer.due = t  # it syncs now
            return refusal.code
        outcome = self._deliver(payer, payer.se, payment, payee, t)
        if outcome is not None:
            # One tap is all or nothing (as in the CLI): the payee's SE refused, so the payer's
            # keeps no trace of the transfer (else it would settle at the payer's next sync).
            payer.se = SecureElement.from_state(before)
        if outcome is None and payer.clone is not None:
            self._clone_pays(payer, t)
        return outcome

    def _deliver(
        self, payer: Device, se: SecureElement, payment: dict[str, Any], payee: Device, t: float
    ) -> str | None:
        now = self.net.clock.epoch + timedelta(seconds=t)
        try:
            payee.se.receive(payment, now)
        except OfflineRefusal as refusal:
            self.tally.refusal(payer.code, refusal.code)
            return refusal.code
        counter = int(payment["transfer"]["counter"])
        if counter in payer.used:
            self.tally.attempts[payer.code] += 1
        payer.used.add(counter)
        self.tally.paid(payer.code, int(payment["transfer"]["amount"]))
        # the clone never syncs: only its payees bring its transfers to an operator
        for device in (payer, payee) if se is payer.se else (payee,):
            if device.due is None:
                device.due = t + draws.sync_delay(self.rng, self.spec.sync_delay)
        return None

    def _clone_pays(self, device: Device, t: float) -> None:
        """The clone pays someone else at the same time, as much as it may (its per-payment
        limit, or what is left in its copy of the purse)."""
        clone = device.clone
        assert clone is not None
        amount = min(clone.limits.per_payment, clone.purse)
        if amount <= 0:
            return
        wallet = draws.pick(self.rng, list(self.devices), avoid=device.wallet)
        if wallet is None:
            return
        payee = self.devices[wallet]
        now = self.net.clock.epoch + timedelta(seconds=t)
        before = clone.state()
        try:
            payment = clone.pay(payee.se.device_id, payee.wallet, amount, now)
        except OfflineRefusal as refusal:
            self.tally.refusal(device.code, f"clone.{refusal.code}")
            return
        if self._deliver(device, clone, payment, payee, t) is not None:
            device.clone = SecureElement.from_state(before)  # refused: no trace, as above

    # ------------------------------------------------------------ syncing

    def _sync_due(self, until: float) -> None:
        """Sync every device due before `until`, in the order they fell due (none while the
        network is down: they wait for it)."""
        while True:
            due = [d for d in self.devices.values() if d.due is not None and d.due < until]
            if not due:
                return
            device = min(due, key=lambda d: (d.due, d.index))
            at = float(device.due)  # type: ignore[arg-type]
            if self.is_down(at):
                back = self.back_at(at)
                for d in due:
                    d.due = max(float(d.due), back)  # type: ignore[arg-type]
                continue
            self._sync(device, max(at, self.net.clock.seconds))

    def _sync(self, device: Device, at: float) -> None:
        device.due = None
        if not self.net.up(device.code):  # its operator is out: it tries again later
            device.due = at + draws.sync_delay(self.rng, self.spec.sync_delay)
            return
        now = self.net.clock.epoch + timedelta(seconds=at)
        signed = device.se.sync_batch(now)
        try:
            if device.code not in self.lists:
                self.lists[device.code] = self._run(device.code, at, revocation_list)
            answer = self._run(device.code, at, sync, batch=signed, listed=self.lists[device.code])
        except DomainError as exc:
            self.tally.refusal(device.code, f"sync.{exc.code}")
            device.due = at + draws.sync_delay(self.rng, self.spec.sync_delay)
            return
        try:
            device.se.apply_sync(answer)
        except OfflineRefusal as refusal:
            self.tally.refusal(device.code, f"sync.{refusal.code}")
        self.tally.syncs[device.code] += 1
        # The sync endpoint wakes the operator's worker: forwarding of other operators'
        # payments, revocation reports and settlement start at once, at the sync's time.
        if _queues_work(answer):
            settle.run_jobs(self.net)
            self.lists.clear()  # a revocation may have reached the central bank
        if self.spec.top_up == "sync":
            self._top_up(device, at)

    # ------------------------------------------------------------ figures

    def figures(self, observed: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        """The step's offline series per operator (`simulator/offline_metrics.py`), from the
        engine's tally and the operators' databases (`observed`: `simulator.metrics.observe`'s
        figures per operator)."""
        found = offline_metrics.detections(self.net)
        out: dict[str, dict[str, int]] = {}
        for code in self.net.codes:
            now, before = found[code], self.found.get(code, {})
            out[code] = {
                **self.tally.take(code),
                "double_spends_detected": now["detected"] - before.get("detected", 0),
                "detection_delay_s": now["delay_s"] - before.get("delay_s", 0),
                "purse_balances": int(observed[code]["purse_balances"]),
                "fraud_losses": int(observed[code]["fraud_losses"]),
                "devices_revoked": now["revoked"],
            }
        self.found = found
        return out

    def summary(self) -> dict[str, Any]:
        return offline_metrics.summary(self.net, self.tally, self.spec)


__all__ = ["Device", "OfflineWorld", "network_back", "policy_with_offline"]
