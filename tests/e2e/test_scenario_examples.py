"""Every example scenario (except the million-payment speed run) runs with `cbdc scenario run`
and produces its report with plots, with every invariant holding; and the examples answer
their questions: the run drains the operator and holding limits drain it less; deferred net
settlement needs less liquidity than RTGS; everyone pays offline through an outage; larger
purses lose more to cloned devices.

Each run is a `cbdc` process of its own; the two runs a test compares run side by side (a run
waits on PostgreSQL and on its own threads much of the time)."""

from __future__ import annotations

import csv
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.conftest import REPO, run_cli

EXAMPLES = REPO / "scenarios"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.toml") if p.stem != "speed-1m")
# Examples whose questions compare two runs: each pair is one test that runs both side by side.
# Every example runs exactly once in the whole session (a module-wide fixture ran all of them
# on every xdist worker that got one of its tests), the longest tests first.
PAIRS = (
    ("class-mix-anonymous", "class-mix-verified"),
    ("bank-run", "bank-run-limits"),
    ("rtgs-vs-net", "net-settlement"),
    ("offline-fraud-cap-small", "offline-fraud-cap-large"),
    ("stimulus-money", "stimulus-voucher"),
)
SINGLES = ("baseline", "offline-outage", "cash-substitution")


def run_examples(root: Path, pg_url: str, *names: str) -> dict[str, Path]:
    """Run examples with the `cbdc` command, as a researcher would, side by side."""

    def run(name: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            "scenario",
            "run",
            str(EXAMPLES / f"{name}.toml"),
            "--runs-dir",
            str(root),
            "--database-url",
            pg_url,
            "--quiet",
            timeout=1800,
        )

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = dict(zip(names, pool.map(run, names), strict=True))
    done: dict[str, Path] = {}
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stdout, result.stderr)
        done[name] = Path(result.stdout.strip().splitlines()[-1])
        check_report(done[name], name)
    return done


def test_every_example_is_run() -> None:
    assert sorted([*SINGLES, *(name for pair in PAIRS for name in pair)]) == NAMES


def series(run_dir: Path) -> list[dict[str, int]]:
    with (run_dir / "series.csv").open() as handle:
        return [{k: int(float(v)) for k, v in row.items()} for row in csv.DictReader(handle)]


def total(run_dir: Path, column: str) -> int:
    return sum(row[column] for row in series(run_dir))


def check_report(run_dir: Path, name: str) -> None:
    """Every example: invariants held, payments made, a report with its question and plots."""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["invariants_ok"] and summary["invariants_checked"] > 0
    assert summary["payments_ok"] > 0
    report = (run_dir / "report.md").read_text()
    assert summary["question"] in report
    plots = list((run_dir / "plots").glob("*.png"))
    assert len(plots) >= 5 and all(p.stat().st_size > 1000 for p in plots)
    assert (run_dir / "scenario.toml").read_text() == (EXAMPLES / f"{name}.toml").read_text()


# Longest first: xdist hands tests out in this order.


def test_the_class_mix_moves_limit_hits_and_aml_alerts(pg_url: str, tmp_path: Path) -> None:
    runs = run_examples(tmp_path, pg_url, "class-mix-anonymous", "class-mix-verified")
    anonymous, verified = runs["class-mix-anonymous"], runs["class-mix-verified"]
    # small anonymous wallets run into their limits; verified ones can make the large payments
    # the AML rules report
    assert total(anonymous, "limit_hits") > total(verified, "limit_hits")
    assert total(verified, "aml_alerts") > total(anonymous, "aml_alerts")
    assert total(verified, "payments_ok") > total(anonymous, "payments_ok")


def test_bank_run_drains_the_operator_and_holding_limits_drain_less(
    pg_url: str, tmp_path: Path
) -> None:
    runs = run_examples(tmp_path, pg_url, "bank-run", "bank-run-limits")
    free, limited = series(runs["bank-run"]), series(runs["bank-run-limits"])
    start = free[0]["reserves.BKA1"]
    assert limited[0]["reserves.BKA1"] == start
    drained_free = start - free[-1]["reserves.BKA1"]
    drained_limited = start - limited[-1]["reserves.BKA1"]
    assert drained_free > start // 2  # the run takes most of the operator's reserves
    assert 0 < drained_limited < drained_free * 0.8
    # the deposits left for the digital currency, the other operator did not move
    assert free[-1]["deposits.BKA1"] < free[0]["deposits.BKA1"]
    assert free[-1]["reserves.BKB1"] == free[0]["reserves.BKB1"]
    assert total(runs["bank-run-limits"], "limit_hits") > total(runs["bank-run"], "limit_hits")


def test_net_settlement_needs_less_liquidity_than_rtgs(pg_url: str, tmp_path: Path) -> None:
    runs = run_examples(tmp_path, pg_url, "rtgs-vs-net", "net-settlement")
    rtgs, net = runs["rtgs-vs-net"], runs["net-settlement"]
    gross_rtgs, gross_net = total(rtgs, "gross_settlement"), total(net, "gross_settlement")
    # the same people pay alike (same seed); only when payees are credited differs
    assert gross_rtgs > 0 and abs(gross_net - gross_rtgs) < gross_rtgs * 0.1
    # RTGS moves every cross-operator payment's value in tokens (and every return's);
    # netting moves only each pair's difference per cycle
    assert total(rtgs, "liquidity_need") >= gross_rtgs
    assert total(net, "liquidity_need") < total(rtgs, "liquidity_need") * 0.6


def test_larger_purses_lose_more_to_cloned_devices(pg_url: str, tmp_path: Path) -> None:
    runs = run_examples(tmp_path, pg_url, "offline-fraud-cap-small", "offline-fraud-cap-large")
    small, large = runs["offline-fraud-cap-small"], runs["offline-fraud-cap-large"]
    for run in (small, large):  # the clones are caught by their operators
        assert total(run, "double_spends_detected") > 0
        assert series(run)[-1]["devices_revoked"] > 0
    # a larger purse lets a clone spend more than its holder's wallet can make good
    assert series(large)[-1]["fraud_losses"] > series(small)[-1]["fraud_losses"]


def test_a_voucher_stimulus_is_spent_where_it_may_and_what_is_left_goes_back(
    pg_url: str, tmp_path: Path
) -> None:
    runs = run_examples(tmp_path, pg_url, "stimulus-money", "stimulus-voucher")
    money, voucher = runs["stimulus-money"], runs["stimulus-voucher"]
    m = json.loads((money / "summary.json").read_text())["programmable"]["stimulus"]
    v = json.loads((voucher / "summary.json").read_text())["programmable"]["stimulus"]
    assert m["paid"] == v["paid"] == 120 * 200_00  # every household got 200, in either form
    # ordinary money never expires; the voucher's unspent value went back to the agency, and
    # every cent granted was either spent or returned (the sweep ran exactly once)
    assert total(money, "expiry_returns") == 0 == total(money, "voucher_spending")
    returned, spent = total(voucher, "expiry_returns"), total(voucher, "voucher_spending")
    assert returned > 0 and spent > 0 and spent + returned == v["paid"]
    assert v["expiry_returns"] == returned and series(voucher)[-1]["voucher_outstanding"] == 0
    # the voucher was spent only at grocery and restaurant merchants, and nowhere else: the
    # money run's payments at those merchants were all ordinary
    assert set(v["voucher_spending_by_category"]) == {"groceries", "restaurants"}
    assert sum(v["voucher_spending_by_category"].values()) == spent
    assert m["voucher_spending_by_category"] == {}
    # Velocity. Households pay the same purchases in both runs (the draws do not depend on
    # what they hold), so during the voucher period money turns over alike: the voucher only
    # changes which pocket pays. After the expiry the voucher run's public holds less (what
    # was left went back to the agency) for the same purchases: its velocity is higher.
    during_m = json.loads((money / "summary.json").read_text())["velocity_during_stimulus"]
    during_v = json.loads((voucher / "summary.json").read_text())["velocity_during_stimulus"]
    assert abs(during_v - during_m) < 0.05 * during_m
    assert v["velocity_after"] > m["velocity_after"]
    assert series(voucher)[-1]["money_held"] < series(money)[-1]["money_held"]
    # the comparison shows it
    out = tmp_path / "compared"
    compared = run_cli("scenario", "compare", str(money), str(voucher), "--out", str(out))
    assert compared.returncode == 0, compared.stderr
    report = (out / "compare.md").read_text()
    assert "voucher expiry returns" in report and "velocity after the voucher period" in report


def test_the_baseline_example(pg_url: str, tmp_path: Path) -> None:
    run_examples(tmp_path, pg_url, "baseline")  # its report and invariants: check_report


def test_the_offline_outage_pays_offline_and_syncs_after(pg_url: str, tmp_path: Path) -> None:
    rows = series(run_examples(tmp_path, pg_url, "offline-outage")["offline-outage"])
    day = 86_400
    down = [r for r in rows if 2 * day < r["time_s"] <= 4 * day]  # the steps without network
    assert down and all(r["offline_syncs"] == 0 and r["offline_payments"] > 0 for r in down)
    assert sum(r["offline_syncs"] for r in rows if r["time_s"] > 4 * day) > 0  # then they sync


def test_cash_substitution_moves_banknotes_into_digital_currency(
    pg_url: str, tmp_path: Path
) -> None:
    rows = series(run_examples(tmp_path, pg_url, "cash-substitution")["cash-substitution"])
    assert rows[-1]["household_cash"] < rows[0]["household_cash"]
    assert rows[-1]["cbdc_outstanding"] > rows[0]["cbdc_outstanding"]
    assert rows[-1]["cash_on_hand"] > 0  # the banknotes went over the operators' counters
