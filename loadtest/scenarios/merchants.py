"""Merchant users: read their balance and their recent history, as a till or a shop's
back office would, with requests signed by the merchant wallet's key."""

from __future__ import annotations

import random

from locust import User, task

from loadtest.scenarios import common


class MerchantUser(User):
    weight = common.settings().merchant_weight
    wait_time = common.wait_time()

    def on_start(self) -> None:
        self.rng = random.Random()
        operator = common.pick_operator(self.rng)
        self.operator = operator
        self.index = self.rng.randrange(len(operator.merchants))
        self.wallet_id = operator.merchants[self.index]
        self.key = common.key_of(operator, self.index, merchant=True)
        self.http = common.OperatorHttp(self.environment, [operator])

    def on_stop(self) -> None:
        self.http.close()

    def _get(self, target: str, name: str) -> None:
        headers = common.signed_get_headers(self.key, self.wallet_id, target)
        status, content, error, elapsed_ms = self.http.request(
            self.operator.code, "GET", target, headers=headers
        )
        if error is None and status != 200:
            error = common.UnexpectedAnswer(f"{status} {common.problem_code(content)}")
        self.http.report("GET", name, elapsed_ms, len(content), error)

    @task(3)
    def balance(self) -> None:
        self._get(f"/v1/wallets/{self.wallet_id}", "merchant balance")

    @task(1)
    def history(self) -> None:
        limit = common.settings().history_limit
        self._get(f"/v1/wallets/{self.wallet_id}/history?limit={limit}", "merchant history")
