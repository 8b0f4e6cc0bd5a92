"""Wallet users: each picks seeded wallets at random and pays with real signed orders.

Within and across operators in the configured mix (`LOADTEST_CROSS_SHARE`), small and large
amounts (`LOADTEST_LARGE_SHARE`: above class IV's single-payment limit, so anonymous payers are
refused by law), some to merchants. Requests are named by route (`pay same-operator`,
`pay cross-operator`) so Locust reports each one's rate and latency. A refusal the mix expects
(`EXPECTED_REFUSALS`) counts as a successful request and is tallied by its problem code; any
other non-2xx answer is a failure.
"""

from __future__ import annotations

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.scenarios import common


class WalletUser(FastHttpUser):
    weight = common.settings().wallet_weight
    wait_time = common.wait_time()
    # Locust needs a host; requests use absolute URLs of the payer's operator.
    host = "http://127.0.0.1"

    def on_start(self) -> None:
        self.rng = random.Random()
        self.cfg = common.settings()
        self.unit = 10 ** common.manifest().decimals

    def _amount(self) -> int:
        s, rng = self.cfg, self.rng
        if rng.random() < s.large_share:
            return rng.randint(s.large_min, s.large_max) * self.unit
        return rng.randint(s.small_min, s.small_max) * self.unit

    @task
    def pay(self) -> None:
        rng, s = self.rng, self.cfg
        payer_op = common.pick_operator(rng)
        index = rng.randrange(len(payer_op.wallets))
        payer = payer_op.wallets[index]
        cross = len(common.manifest().operators) > 1 and rng.random() < s.cross_share
        payee_op = common.pick_operator(rng, other_than=payer_op.code) if cross else payer_op
        if rng.random() < s.merchant_share:
            payee = rng.choice(payee_op.merchants)
        else:
            payee = rng.choice(payee_op.wallets)
            while payee == payer:
                payee = rng.choice(payee_op.wallets)
        body = common.signed_payment(
            common.key_of(payer_op, index),
            payer=payer,
            payee=payee,
            amount=self._amount(),
            currency=common.manifest().currency,
        )
        name = "pay cross-operator" if cross else "pay same-operator"
        with self.client.post(
            f"{payer_op.url}/v1/payments",
            data=body,
            headers={"Content-Type": "application/json"},
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code == 201:
                status = (response.json() or {}).get("status", "unknown")
                common.outcomes[f"{name}: {status}"] += 1
                response.success()
                return
            code = common.problem_code(response.content or b"")
            if code in common.EXPECTED_REFUSALS:
                common.outcomes[f"{name}: refused {code}"] += 1
                response.success()
            else:
                common.outcomes[f"{name}: error {response.status_code} {code}"] += 1
                response.failure(f"{response.status_code} {code}")
