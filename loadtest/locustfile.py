"""The Locust suite: wallet users paying with signed orders and merchant users reading balances
and history, against the wallets `python -m loadtest.seed` (or `cbdc bench`) seeded.

    locust -f loadtest/locustfile.py --headless -u 64 -r 64 -t 60s \
        --csv runs/lt --html runs/lt.html

Configuration: `LOADTEST_*` variables (loadtest/config.py). Distributed: one
`--master` and any number of `--worker` processes (or `--processes N`), see loadtest/README.md.
Payment outcomes (completed, pending settlement, refused by code, errors) are tallied by every
process, added up at the master and written to `LOADTEST_OUTCOMES_FILE` when the run stops,
with the request statistics to `LOADTEST_STATS_FILE`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadtest.scenarios import common
from loadtest.scenarios.merchants import MerchantUser
from loadtest.scenarios.wallets import WalletUser

__all__ = ["MerchantUser", "WalletUser"]

_totals: Counter[str] = Counter()


@events.report_to_master.add_listener
def _send_outcomes(client_id: str, data: dict[str, Any]) -> None:
    data["payment_outcomes"] = dict(common.outcomes)
    common.outcomes.clear()


@events.worker_report.add_listener
def _add_outcomes(client_id: str, data: dict[str, Any]) -> None:
    _totals.update(data.get("payment_outcomes", {}))


def _entry(entry: Any) -> dict[str, Any]:
    return {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "per_s": round(entry.total_rps, 1),
        "p50_ms": entry.get_response_time_percentile(0.50),
        "p95_ms": entry.get_response_time_percentile(0.95),
        "p99_ms": entry.get_response_time_percentile(0.99),
        "mean_ms": round(entry.avg_response_time, 1),
    }


@events.quitting.add_listener
def _write_results(environment: Any, **_: Any) -> None:
    """At the end, in one place (the master, or the only process): the outcome tally
    (`LOADTEST_OUTCOMES_FILE`) and the request statistics (`LOADTEST_STATS_FILE`), taken at the
    same moment so that they count the same requests."""
    if isinstance(environment.runner, WorkerRunner):
        return
    totals = _totals if isinstance(environment.runner, MasterRunner) else common.outcomes
    path = os.environ.get("LOADTEST_OUTCOMES_FILE")
    if path:
        with open(path, "w") as out:
            json.dump(dict(sorted(totals.items())), out, indent=2)
    path = os.environ.get("LOADTEST_STATS_FILE")
    if path:
        stats = environment.runner.stats
        rows = {name: _entry(entry) for (name, _method), entry in stats.entries.items()}
        rows["Aggregated"] = _entry(stats.total)
        with open(path, "w") as out:
            json.dump(rows, out, indent=2)
