"""The Locust suite: wallet users paying with signed orders and merchant users reading balances
and history, against the wallets `python -m loadtest.seed` (or `cbdc bench`) seeded.

    locust -f loadtest/locustfile.py --headless -u 64 -r 64 -t 60s \
        --csv runs/lt --html runs/lt.html

Configuration: `LOADTEST_*` variables (loadtest/config.py). Distributed: one
`--master` and any number of `--worker` processes (or `--processes N`), see loadtest/README.md.
Payment outcomes (completed, pending settlement, refused by code, errors) are tallied by every
process, added up at the master and written to `LOADTEST_OUTCOMES_FILE` when the run stops,
with the request statistics to `LOADTEST_STATS_FILE`, and the CPU the load generator used while
the test ran (every process, from test start to test stop: start-up and key derivation excluded)
to `LOADTEST_CPU_FILE`.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import Counter
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadtest.scenarios import common
from loadtest.scenarios.merchants import MerchantUser
from loadtest.scenarios.wallets import WalletUser

__all__ = ["MerchantUser", "WalletUser"]

_totals: Counter[str] = Counter()
# At the master: each worker's CPU seconds in the test so far (all, system).
_worker_cpu: dict[str, list[float]] = {}


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def _process_system_cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime  # the kernel's part (sockets)


class _TestWindow:
    """This process's CPU seconds and wall time between test start and test stop."""

    cpu_start: float | None = None
    cpu_stop: float | None = None
    system_start = 0.0
    system_stop: float | None = None
    wall_start = 0.0
    wall_stop = 0.0

    @classmethod
    def cpu_seconds(cls) -> float:
        if cls.cpu_start is None:
            return 0.0
        end = cls.cpu_stop if cls.cpu_stop is not None else _process_cpu()
        return end - cls.cpu_start

    @classmethod
    def system_seconds(cls) -> float:
        if cls.cpu_start is None:
            return 0.0
        end = cls.system_stop if cls.system_stop is not None else _process_system_cpu()
        return end - cls.system_start


def _derive_keys() -> None:
    """Wallet keys are derived before the test (a wallet holds its key; deriving one costs an
    Ed25519 scalar multiplication, as much as a signature), here, as the locustfile loads:
    before `--processes` forks the workers, which inherit them."""
    if not common.settings().manifest.exists():
        return  # the users say what is missing when they start
    common.derive_keys_ahead()
    # gevent's loop caches the time: without this, timers started next (Locust's run time
    # limit among them) would fire early by as long as the keys took.
    gevent.get_hub().loop.update_now()


_derive_keys()


@events.test_start.add_listener
def _window_opens(**_: Any) -> None:
    if _TestWindow.cpu_start is None:
        _TestWindow.cpu_start = _process_cpu()
        _TestWindow.system_start = _process_system_cpu()
        _TestWindow.wall_start = time.monotonic()


@events.test_stop.add_listener
def _window_closes(**_: Any) -> None:
    if _TestWindow.cpu_start is not None and _TestWindow.cpu_stop is None:
        _TestWindow.cpu_stop = _process_cpu()
        _TestWindow.system_stop = _process_system_cpu()
        _TestWindow.wall_stop = time.monotonic()


@events.report_to_master.add_listener
def _send_outcomes(client_id: str, data: dict[str, Any]) -> None:
    data["payment_outcomes"] = dict(common.outcomes)
    common.outcomes.clear()
    # So far in the test (the latest report wins): all CPU, and the kernel's part of it.
    data["load_cpu_seconds"] = [_TestWindow.cpu_seconds(), _TestWindow.system_seconds()]


@events.worker_report.add_listener
def _add_outcomes(client_id: str, data: dict[str, Any]) -> None:
    _totals.update(data.get("payment_outcomes", {}))
    if "load_cpu_seconds" in data:
        _worker_cpu[client_id] = data["load_cpu_seconds"]


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
    path = os.environ.get("LOADTEST_CPU_FILE")
    if path:
        own = [_TestWindow.cpu_seconds(), _TestWindow.system_seconds()]
        workers = list(_worker_cpu.values())
        cpu = {
            "cpu_seconds": round(own[0] + sum(w[0] for w in workers), 3),
            "system_cpu_seconds": round(own[1] + sum(w[1] for w in workers), 3),
            "processes": 1 + len(workers),
            # The master (or the only process), then each worker.
            "per_process_cpu_seconds": [round(own[0], 3)] + [round(w[0], 3) for w in workers],
            "test_seconds": round(max(0.0, _TestWindow.wall_stop - _TestWindow.wall_start), 2),
        }
        with open(path, "w") as out:
            json.dump(cpu, out, indent=2)
