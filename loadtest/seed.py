"""Fast bulk seeding of load-test wallets (10k to 1M) on a running network.

Customers, wallets and their opening loads go in set-based through the operators' own bulk
functions (`operators.payments.bulk`: the same evidence checks, encrypted identity, signed wallet
certificates and double-entry loads as the HTTP onboarding), thousands per transaction, straight
into each operator's database; the vault float is topped up by real issuance from the central
bank first. Wallet keys are derived from a seed (`loadtest.keys`), so only public keys are stored
and the manifest lists wallet ids, not secrets.

    python -m loadtest.seed --network-file .cbdc/network.json --wallets 100000
"""

from __future__ import annotations

import argparse
import functools
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cbdc.policy import WalletClass
from cbdc.settings import NetworkConfig
from loadtest.config import LoadtestSettings
from loadtest.keys import derive_key
from loadtest.manifest import MERCHANT_SUFFIX, Manifest, OperatorWallets
from operators.app import config_from_network
from operators.errors import VaultFloatInsufficient
from operators.payments import bulk
from operators.state import OperatorState
from simulator.population import MERCHANT_NUMBERS, identity  # distinct evidence per person

CHUNK = 5_000  # wallets per transaction


def _seed_operator(
    network: NetworkConfig,
    code: str,
    settings: LoadtestSettings,
    key_seed: str,
    progress: Callable[[str, int], None],
) -> OperatorWallets:
    config = config_from_network(network, code)
    config.run_worker = False
    config.pool_size = 2
    state = OperatorState(config)
    unit = 10**network.currency_decimals
    out = OperatorWallets(code=code, url=network.operator(code).url)
    try:
        plan: list[tuple[str, int, WalletClass]] = []  # (key owner, index, class)
        anonymous_every = 1 / settings.anonymous_share if settings.anonymous_share else 0
        for i in range(settings.wallets):
            anonymous = bool(anonymous_every) and int(i % anonymous_every) == 0
            plan.append((code, i, WalletClass.IV if anonymous else WalletClass.II))
        for i in range(settings.merchants):
            plan.append((code + MERCHANT_SUFFIX, i, WalletClass.I))
        for first in range(0, len(plan), CHUNK):
            chunk = plan[first : first + CHUNK]
            balances = [_opening_balance(settings, state, cls, unit) for _, _, cls in chunk]
            needed = sum(balances)
            work = functools.partial(
                _seed_chunk, state=state, key_seed=key_seed, chunk=chunk, balances=balances
            )
            for attempt in range(5):
                state.ensure_float(needed)
                try:
                    ids: list[str] = state.uow.run(None, work)
                    break
                except VaultFloatInsufficient:
                    # The service's own worker may redeem a float above its high water mark
                    # between our issuance and the loads: obtain it again and retry the chunk.
                    if attempt == 4:
                        raise
            for (owner, _, cls), wallet_id in zip(chunk, ids, strict=True):
                if owner == code:
                    out.wallets.append(wallet_id)
                    out.anonymous.append(cls == WalletClass.IV)
                else:
                    out.merchants.append(wallet_id)
            progress(code, len(chunk))
        with state.engine.begin() as conn:  # fresh statistics after a bulk load
            conn.exec_driver_sql("ANALYZE")
    finally:
        state.stop()
    return out


def _opening_balance(
    settings: LoadtestSettings, state: OperatorState, cls: WalletClass, unit: int
) -> int:
    if cls == WalletClass.I:
        return 0  # merchants start empty and only receive
    cap = state.ctx.policy.limits(cls).balance_cap
    wanted = settings.balance * unit
    return min(wanted, cap // 2) if cap is not None else wanted


def _seed_chunk(
    session: Any,
    state: OperatorState,
    key_seed: str,
    chunk: list[tuple[str, int, WalletClass]],
    balances: list[int],
) -> list[str]:
    ctx = state.ctx
    people = [
        bulk.NewCustomer(
            identity(
                f"Load test {owner} {i}",
                MERCHANT_NUMBERS + i if owner.endswith(MERCHANT_SUFFIX) else i,
            ),
            deposit=b,
        )
        for (owner, i, _), b in zip(chunk, balances, strict=True)
    ]
    customers = bulk.add_customers(session, ctx, people)
    wallets = [
        bulk.NewWallet(cid, p.identity, cls, derive_key(key_seed, owner, i).public_key)
        for (owner, i, cls), cid, p in zip(chunk, customers, people, strict=True)
    ]
    ids = bulk.open_wallets(session, ctx, wallets)
    moves = [(w, b) for w, b in zip(ids, balances, strict=True) if b > 0]
    outcomes = bulk.exchange_many(session, ctx, "load", moves)
    refused = [o for o in outcomes if not o.ok]
    if refused:
        if any(isinstance(o.error, VaultFloatInsufficient) for o in refused):
            raise VaultFloatInsufficient("the vault float was redeemed meanwhile")
        raise RuntimeError(f"seeding load refused: {refused[0].wallet_id}: {refused[0].error}")
    return ids


def seed(
    network: NetworkConfig,
    settings: LoadtestSettings,
    *,
    key_seed: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> Manifest:
    """Seed `settings.wallets` wallets and `settings.merchants` merchants per operator, write
    the manifest to `settings.manifest` and return it."""
    key_seed = key_seed or secrets.token_hex(8)
    report = progress or (lambda code, n: None)
    with ThreadPoolExecutor(max_workers=len(network.operators)) as pool:
        futures = [
            pool.submit(_seed_operator, network, node.code, settings, key_seed, report)
            for node in network.operators
        ]
        operators = [f.result() for f in futures]
    manifest = Manifest(key_seed, network.currency, network.currency_decimals, operators)
    manifest.save(settings.manifest)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network-file", type=Path, default=Path(".cbdc/network.json"))
    parser.add_argument("--wallets", type=int, help="wallets per operator (LOADTEST_WALLETS)")
    parser.add_argument("--manifest", type=Path, help="output (LOADTEST_MANIFEST)")
    args = parser.parse_args()
    settings = LoadtestSettings()
    if args.wallets:
        settings.wallets = args.wallets
    if args.manifest:
        settings.manifest = args.manifest
    network = NetworkConfig.load(args.network_file)
    started = time.perf_counter()
    manifest = seed(network, settings)
    elapsed = time.perf_counter() - started
    print(
        f"seeded {manifest.wallet_count} wallets on {len(manifest.operators)} operators in "
        f"{elapsed:.1f} s; manifest: {settings.manifest}"
    )


if __name__ == "__main__":
    main()
