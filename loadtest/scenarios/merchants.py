"""Merchant users: read their balance and their recent history, as a till or a shop's
back office would, with requests signed by the merchant wallet's key."""

from __future__ import annotations

import random

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.scenarios import common


class MerchantUser(FastHttpUser):
    weight = common.settings().merchant_weight
    wait_time = common.wait_time()
    host = "http://127.0.0.1"

    def on_start(self) -> None:
        self.rng = random.Random()
        operator = common.pick_operator(self.rng)
        self.operator = operator
        self.index = self.rng.randrange(len(operator.merchants))
        self.wallet_id = operator.merchants[self.index]
        self.key = common.key_of(operator, self.index, merchant=True)

    def _get(self, target: str, name: str) -> None:
        headers = common.signed_get_headers(self.key, self.wallet_id, target)
        with self.client.get(
            f"{self.operator.url}{target}", headers=headers, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                code = common.problem_code(response.content or b"")
                response.failure(f"{response.status_code} {code}")

    @task(3)
    def balance(self) -> None:
        self._get(f"/v1/wallets/{self.wallet_id}", "merchant balance")

    @task(1)
    def history(self) -> None:
        limit = common.settings().history_limit
        self._get(f"/v1/wallets/{self.wallet_id}/history?limit={limit}", "merchant history")
