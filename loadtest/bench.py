"""`cbdc bench`: one run that produces numbers you can trust on a shared, noisy machine.

1. a network: started fresh (embedded PostgreSQL, central bank, operators as uvicorn processes
   on 127.0.0.1) or an existing one (`network_file`);
2. wallets seeded in bulk (`loadtest.seed`);
3. the raw PostgreSQL baseline in the same run (`loadtest.pgbaseline`: pgbench, the same
   transfer as three statements, as one SQL function call, and batched);
4. the Locust suite (`loadtest/locustfile.py`) headless against the API for a fixed time, with
   the CPU split between load generator, services (by service) and database (by database)
   sampled meanwhile, reported as CPU milliseconds per payment (`cpu_ms_per_payment`);
5. `cbdc audit` on the network afterwards: no money lost under load;
6. `bench.json` and `bench.md` (plus Locust's CSV and HTML reports) in the run folder.

Timings are reported as measured, with the ratio to the baseline of the same run; nothing here
asserts a timing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy.engine import make_url

from cbdc.pg import SECRET_FILE, EmbeddedPostgres
from cbdc.settings import NetworkConfig, Settings
from loadtest import batchpath, pgbaseline
from loadtest.config import LoadtestSettings
from loadtest.cpu import CpuSampler, postgres_labels, postgres_roots, root_labels
from loadtest.cpureport import cpu_markdown, cpu_per_payment
from loadtest.manifest import Manifest
from loadtest.seed import seed
from orchestration.audit import run_audit
from orchestration.network import Network

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


@dataclass
class BenchOptions:
    duration: float = 60.0  # seconds of Locust load
    users: int = 64
    spawn_rate: float = 0.0  # users started per second; 0 = all at once
    processes: int = 1  # Locust processes (>1: a master and this many workers, forked)
    operators: int = 2
    workers: int = 1  # uvicorn workers per service
    wallets: int = 10_000  # per operator
    cross_share: float = 0.2
    large_share: float = 0.05
    merchant_weight: int = 1  # merchant (read) users per `wallet_weight` paying users
    wallet_weight: int = 10
    settlement_mode: str = "rtgs"
    baseline_seconds: float = 15.0
    baseline_clients: int = 8
    baseline_accounts: int = 100_000
    batch_orders: int = 20_000  # per operator, through POST /v1/payments/batch; 0: skip
    batch_size: int = 500
    network_file: Path | None = None  # an existing network; default: start a fresh one
    data_dir: Path = Path(".cbdc-bench")
    port: int = 18_700
    out_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


Progress = Callable[[str], None]


def _server_url(network: Network | None, config: NetworkConfig, network_file: Path) -> str:
    """An administrator's URL of the network's database server, for the baseline's scratch
    database: the services' own roles may not create databases."""
    if network is not None:
        return network.pg.url if network.pg is not None else network.server_url()
    if (network_file.parent / SECRET_FILE).exists():  # a network on its own embedded server
        return EmbeddedPostgres(network_file.parent).start()
    configured = Settings().database_url
    if configured:
        return configured
    # The services connect as the server's user (no role of their own): that user, then.
    url = make_url(config.central_bank.database_url)
    return url.set(database="postgres").render_as_string(hide_password=False)


def _service_names(network: Network | None, network_file: Path) -> Callable[[], dict[int, str]]:
    """The services' root pids, each with its name (`central bank`, `operator <code>`)."""
    if network is not None:
        names = {
            p.pid: "central bank" if name == "central_bank" else name.replace("_", " ", 1)
            for name, p in network.processes
        }
        return lambda: names

    def find() -> dict[int, str]:  # services someone else started: found by their network file
        found = {}
        for process in psutil.process_iter(["pid"]):
            try:
                env = process.environ()
                if env.get("CBDC_NETWORK_FILE") != str(network_file):
                    continue
                if process.parent() and process.parent().environ().get(  # a uvicorn worker
                    "CBDC_NETWORK_FILE"
                ) == str(network_file):
                    continue
                code = env.get("CBDC_OPERATOR_CODE")
                found[process.pid] = f"operator {code}" if code else "central bank"
            except psutil.Error:
                continue
        return found

    return find


def _postmaster_pid_file(network: Network | None, network_file: Path) -> str | None:
    """The embedded server's postmaster.pid (ours, or an existing network's own); None for a
    server we did not start (then every process named postgres counts as the database)."""
    if network is not None:
        return str(network.pg.pgdata / "postmaster.pid") if network.pg else None
    if (network_file.parent / SECRET_FILE).exists():
        return str(EmbeddedPostgres(network_file.parent).pgdata / "postmaster.pid")
    return None


def _database_names(config: NetworkConfig) -> dict[str, str]:
    """Database name to the service whose database it is."""
    names = {str(make_url(config.central_bank.database_url).database): "central bank"}
    for node in config.operators:
        names[str(make_url(node.database_url).database)] = f"operator {node.code}"
    return names


def _locust(
    options: BenchOptions, manifest: Path, out: Path, cpu: CpuSampler, progress: Progress
) -> dict[str, Any]:
    prefix = out / "locust"
    outcomes_file = out / "payment_outcomes.json"
    stats_file = out / "locust_stats.json"
    cpu_file = out / "locust_cpu.json"
    env = {
        **os.environ,
        "LOADTEST_MANIFEST": str(manifest),
        "LOADTEST_CROSS_SHARE": str(options.cross_share),
        "LOADTEST_LARGE_SHARE": str(options.large_share),
        "LOADTEST_WALLET_WEIGHT": str(options.wallet_weight),
        "LOADTEST_MERCHANT_WEIGHT": str(options.merchant_weight),
        "LOADTEST_OUTCOMES_FILE": str(outcomes_file),
        "LOADTEST_STATS_FILE": str(stats_file),
        "LOADTEST_CPU_FILE": str(cpu_file),
        **options.extra_env,
    }
    rate = options.spawn_rate or options.users
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(options.users), "-r", str(rate), "-t", f"{int(options.duration)}s",
        "--csv", str(prefix), "--html", str(out / "locust.html"), "--only-summary",
        "--stop-timeout", "10", "--loglevel", "WARNING",
    ]  # fmt: skip
    if options.processes > 1:
        cmd += ["--processes", str(options.processes)]
    progress(f"Locust: {options.users} users for {options.duration:.0f} s")
    with open(out / "locust.log", "wb") as log:
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        cpu.groups["load generator"] = lambda: [process.pid]
        cpu.start()
        try:
            # Sample right before Locust exits, while its workers still exist.
            while process.poll() is None:
                cpu.sample()
                time.sleep(0.5)
        finally:
            cpu.stop()
            if process.poll() is None:
                process.kill()
    if process.returncode not in (0, 1):  # 1: some requests failed, reported below
        tail = (out / "locust.log").read_text()[-2000:]
        raise RuntimeError(f"locust exited with {process.returncode}:\n{tail}")
    if not stats_file.exists():
        tail = (out / "locust.log").read_text()[-2000:]
        raise RuntimeError(f"locust wrote no statistics:\n{tail}")
    stats = json.loads(stats_file.read_text())
    payments = {k: v for k, v in stats.items() if k.startswith("pay ")}
    outcomes = json.loads(outcomes_file.read_text()) if outcomes_file.exists() else {}
    total = stats.get("Aggregated", {})
    load_cpu = json.loads(cpu_file.read_text()) if cpu_file.exists() else None
    return {
        "duration_s": options.duration,
        "users": options.users,
        "processes": options.processes,
        # Locust's own CPU from test start to test stop, every process (start-up excluded).
        "load_generator_cpu": load_cpu,
        "requests": stats,
        "payments_per_s": round(sum(v["per_s"] for v in payments.values()), 1),
        "payments": sum(v["requests"] for v in payments.values()),
        # Locust keeps percentiles per request name; the payment p99 is the worst name's.
        "payment_p50_ms": max((v["p50_ms"] for v in payments.values()), default=0.0),
        "payment_p95_ms": max((v["p95_ms"] for v in payments.values()), default=0.0),
        "payment_p99_ms": max((v["p99_ms"] for v in payments.values()), default=0.0),
        "errors": total.get("failures", 0),
        "outcomes": outcomes,
    }


def run_bench(options: BenchOptions, progress: Progress | None = None) -> dict[str, Any]:
    say = progress or (lambda message: None)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = (options.out_dir or Path("runs") / "bench" / stamp).resolve()
    out.mkdir(parents=True, exist_ok=True)
    network: Network | None = None
    wallets_each = options.wallets + 100  # merchants too
    try:
        if options.network_file is None:
            unit = 100
            reserves = max(Settings().operator_reserves, wallets_each * 20_000 * unit * 2)
            settings = Settings(
                data_dir=options.data_dir,
                operators=options.operators,
                workers=options.workers,
                port=options.port,
                settlement_mode=options.settlement_mode,  # type: ignore[arg-type]
                operator_reserves=reserves,
                operator_quota=reserves,
            )
            network = Network(settings)
            network.reset()
            say(f"starting a network: {options.operators} operators, {options.workers} workers")
            network.prepare(fresh_databases=True)
            config = network.start()
            network_file = network.data_dir / "network.json"
        else:
            network_file = options.network_file.resolve()
            config = NetworkConfig.load(network_file)
        manifest = out / "manifest.json"
        say(f"seeding {options.wallets} wallets per operator")
        started = time.perf_counter()
        loadtest = LoadtestSettings(manifest=manifest, wallets=options.wallets)
        seeded = seed(config, loadtest)
        seed_seconds = time.perf_counter() - started

        server = _server_url(network, config, network_file)
        say(f"raw PostgreSQL baseline (pgbench, {options.baseline_seconds:.0f} s per mode)")
        baseline = pgbaseline.measure(
            server,
            accounts=options.baseline_accounts,
            seconds=options.baseline_seconds,
            clients=options.baseline_clients,
            work_dir=out / "pgbench",
        )
        pidfile = _postmaster_pid_file(network, network_file)
        services = _service_names(network, network_file)

        def sampler() -> CpuSampler:
            return CpuSampler(
                {"services": lambda: list(services()), "database": postgres_roots(pidfile)},
                labels={
                    "services": root_labels(services),
                    "database": postgres_labels(_database_names(config)),
                },
            )

        cpu = sampler()
        api = _locust(options, manifest, out, cpu, say)
        batch_api = None
        if options.batch_orders:
            say(f"batch API: {options.batch_orders} signed orders per operator, "
                f"{options.batch_size} per request")  # fmt: skip
            batch_cpu = sampler()
            batch_cpu.groups["load generator"] = lambda: [os.getpid()]  # httpx, posting
            batch_api = batchpath.measure(
                Manifest.load(manifest),
                orders=options.batch_orders,
                batch=options.batch_size,
                cpu=batch_cpu,
            )
            batch_api["cpu"] = batch_cpu.split()
            batch_api["cpu_ms_per_payment"] = cpu_per_payment(
                batch_api["cpu"], payments=batch_api["orders"]
            )
        say("auditing the network (cbdc audit; settlements still queued are worked off first)")
        started = time.perf_counter()
        audit = run_audit(config, drain_timeout=900)
        drain_seconds = time.perf_counter() - started
        function_tps = baseline["modes"].get("function", {}).get("transfers_per_s") or 0
        batched_tps = baseline["modes"].get("batched", {}).get("transfers_per_s") or 0
        result = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                "python": platform.python_version(),
                "postgres": baseline.get("server_version"),
            },
            "options": {
                k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()
            },
            "seeding": {"wallets": seeded.wallet_count, "seconds": round(seed_seconds, 1)},
            "api": api,
            "batch_api": batch_api,
            "baseline": baseline,
            "ratio_to_function_baseline": (
                round(api["payments_per_s"] / function_tps, 3) if function_tps else None
            ),
            "ratio_to_batched_baseline": (
                round(api["payments_per_s"] / batched_tps, 3) if batched_tps else None
            ),
            "batch_api_ratio_to_batched_baseline": (
                round(batch_api["payments_per_s"] / batched_tps, 3)
                if batch_api and batched_tps
                else None
            ),
            "cpu": (split := cpu.split()),
            "cpu_ms_per_payment": cpu_per_payment(
                split,
                payments=api["payments"],
                requests=api["requests"].get("Aggregated", {}).get("requests", 0),
                cross=api["requests"].get("pay cross-operator", {}).get("requests", 0),
                load_cpu=api["load_generator_cpu"],
                baseline=baseline,
            ),
            "audit": {
                "ok": audit["ok"],
                "seconds": round(drain_seconds, 1),  # mostly settling what the load left queued
                "failed_checks": [c["name"] for c in audit["checks"] if not c["ok"]],
            },
            "out_dir": str(out),
        }
    finally:
        if network is not None:
            network.stop()
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    (out / "bench.md").write_text(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    api, base, opts = result["api"], result["baseline"]["modes"], result["options"]
    lines = [
        f"# cbdc bench, {result['date']}",
        "",
        f"{result['machine']['cpus']} cores, PostgreSQL {result['machine']['postgres']}, "
        f"{result['seeding']['wallets']:,} wallets, {api['users']} Locust users for "
        f"{api['duration_s']:.0f} s, durable commits; {opts['operators']} operators, "
        f"{opts['workers']} uvicorn worker(s) each, {opts['cross_share']:.0%} of payments across "
        f"operators, settlement {opts['settlement_mode']}.",
        "",
        "| measure | per s | p50 ms | p95 ms | p99 ms | requests | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| **signed HTTP payments (all)** | **{api['payments_per_s']:,.0f}** | "
        f"{api['payment_p50_ms']:.0f} | {api['payment_p95_ms']:.0f} | "
        f"{api['payment_p99_ms']:.0f} | {api['payments']:,} | {api['errors']} |",
    ]
    for name, row in sorted(api["requests"].items()):
        if name == "Aggregated":
            continue
        lines.append(
            f"| {name} | {row['per_s']:,.0f} | {row['p50_ms']:.0f} | {row['p95_ms']:.0f} | "
            f"{row['p99_ms']:.0f} | {row['requests']:,} | {row['failures']} |"
        )
    batch = result.get("batch_api")
    if batch:
        lines.append(
            f"| signed batch API ({batch['batch']} orders per request) | "
            f"{batch['payments_per_s']:,.0f} | {batch['request_ms']['p50']:.0f} (per request) | | "
            f"{batch['request_ms']['p99']:.0f} (per request) | {batch['orders']:,} | 0 |"
        )
    for mode, label in (
        ("statements", "pgbench: transfer as 3 statements"),
        ("function", "pgbench: transfer as 1 SQL function"),
        ("batched", "pgbench: batched transfers"),
    ):
        if mode not in base:
            continue
        row, lat = base[mode], base[mode]["latency_ms"]
        lines.append(
            f"| {label} | {row['transfers_per_s']:,.0f} | {lat['p50']:.1f} | "
            f"{lat['p95']:.1f} | {lat['p99']:.1f} | | {row.get('failed', 0)} |"
        )
    lines += [
        "",
        f"Ratio of signed HTTP payments to the SQL-function baseline: "
        f"**{result['ratio_to_function_baseline']}** (to batched: "
        f"{result['ratio_to_batched_baseline']}). Batch API to the batched baseline: "
        f"{result['batch_api_ratio_to_batched_baseline']}.",
        "",
        "| CPU | seconds | cores busy | share |",
        "|---|---:|---:|---:|",
    ]
    for name, row in result["cpu"].items():
        lines.append(f"| {name} | {row['cpu_seconds']} | {row['cores']} | {row['share']:.0%} |")
    lines += ["", *cpu_markdown(result)]
    outcomes = result["api"]["outcomes"]
    if outcomes:
        lines += ["", "| payment outcome | count |", "|---|---:|"]
        lines += [f"| {name} | {count:,} |" for name, count in outcomes.items()]
    audit = result["audit"]
    lines += [
        "",
        "Audit after the load: "
        + ("**all invariants hold**" if audit["ok"] else f"**FAILED**: {audit['failed_checks']}"),
        "",
    ]
    return "\n".join(lines)
