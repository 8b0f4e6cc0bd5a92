"""Wallet users: each picks seeded wallets at random and pays with real signed orders.

Within and across operators in the configured mix (`LOADTEST_CROSS_SHARE`), small and large
amounts (`LOADTEST_LARGE_SHARE`: above class IV's single-payment limit, so anonymous payers are
refused by law), some to merchants. Requests are named by route (`pay same-operator`,
`pay cross-operator`) so Locust reports each one's rate and latency. A refusal the mix expects
(`EXPECTED_REFUSALS`) counts as a successful request and is tallied by its problem code; any
other non-2xx answer is a failure. Orders are built and signed as text (`common.payment_body`)
and sent with `common.OperatorHttp`: see `loadtest/scenarios/common.py` for why.
"""

from __future__ import annotations

import random

from locust import User, task

from loadtest.scenarios import common

JSON = {"Content-Type": "application/json"}
PAYMENTS = "/v1/payments"


class WalletUser(User):
    weight = common.settings().wallet_weight
    wait_time = common.wait_time()

    def on_start(self) -> None:
        self.rng = random.Random()
        self.cfg = common.settings()
        manifest = common.manifest()
        self.unit = 10**manifest.decimals
        self.currency = manifest.currency
        self.operators = manifest.operators
        # Each operator's peers (every other operator), for cross-operator payees.
        self.peers = {
            o.code: [p for p in self.operators if p.code != o.code] for o in self.operators
        }
        self.http = common.OperatorHttp(self.environment, self.operators)

    def on_stop(self) -> None:
        self.http.close()

    def _amount(self) -> int:
        s, rng = self.cfg, self.rng
        if rng.random() < s.large_share:
            return rng.randint(s.large_min, s.large_max) * self.unit
        return rng.randint(s.small_min, s.small_max) * self.unit

    @task
    def pay(self) -> None:
        rng, s = self.rng, self.cfg
        payer_op = rng.choice(self.operators)
        index = rng.randrange(len(payer_op.wallets))
        payer = payer_op.wallets[index]
        peers = self.peers[payer_op.code]
        cross = bool(peers) and rng.random() < s.cross_share
        payee_op = rng.choice(peers) if cross else payer_op
        if rng.random() < s.merchant_share:
            payee = rng.choice(payee_op.merchants)
        else:
            payee = rng.choice(payee_op.wallets)
            while payee == payer:
                payee = rng.choice(payee_op.wallets)
        body = common.payment_body(
            common.payer_key(payer_op, index),
            payer=payer,
            payee=payee,
            amount=self._amount(),
            currency=self.currency,
        )
        name = "pay cross-operator" if cross else "pay same-operator"
        status, content, error, elapsed_ms = self.http.request(
            payer_op.code, "POST", PAYMENTS, headers=JSON, body=body
        )
        if error is not None:
            common.outcomes[f"{name}: error {type(error).__name__}"] += 1
        elif status == 201:
            common.outcomes[f"{name}: {common.receipt_status(content)}"] += 1
        else:
            code = common.problem_code(content)
            if code in common.EXPECTED_REFUSALS:
                common.outcomes[f"{name}: refused {code}"] += 1
            else:
                common.outcomes[f"{name}: error {status} {code}"] += 1
                error = common.UnexpectedAnswer(f"{status} {code}")
        self.http.report("POST", name, elapsed_ms, len(content), error)
