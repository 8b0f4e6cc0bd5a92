"""CPU milliseconds per payment, from a run's CPU split (`loadtest.cpu`) and its counts: what
`cbdc bench` writes to bench.json (`cpu_ms_per_payment`), bench.md and the console.

Services and database are sampled with psutil over every process of the group; the load
generator is Locust's own account of its CPU from test start to test stop (every Locust
process; start-up and key derivation are not load). Per route, what can be told apart honestly:
each service process (the central bank works only for cross-operator payments, so its CPU is
also given per cross-operator payment), each database, and the batch API's phase on its own.
"""

from __future__ import annotations

from typing import Any


def _ms(seconds: float, count: int) -> float | None:
    return round(1000 * seconds / count, 3) if count else None


def cpu_per_payment(
    split: dict[str, dict[str, Any]],
    *,
    payments: int,
    requests: int = 0,
    cross: int = 0,
    load_cpu: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """CPU milliseconds per payment: services, database and load generator, and their parts.

    Services and database: the sampler's CPU seconds (psutil, every process of the group) over
    the payments Locust counted (refusals included: each was judged). The load generator:
    Locust's own CPU between test start and stop, every Locust process (`load_cpu`; start-up
    and key derivation are not load), also per request (merchant reads included); without it,
    the sampler's figure for the Locust processes' whole life. The central bank works only for
    cross-operator payments, so its CPU is also given per cross-operator payment. With the
    in-run pgbench `baseline`: the database's CPU per transfer in each of its modes."""
    services = split.get("services", {})
    database = split.get("database", {})
    loadgen = split.get("load generator", {})
    result: dict[str, Any] = {
        "payments": payments,
        "services": _ms(services.get("cpu_seconds", 0.0), payments),
        "database": _ms(database.get("cpu_seconds", 0.0), payments),
        "load_generator": _ms(loadgen.get("cpu_seconds", 0.0), payments),
        "load_generator_source": "sampler (whole process)",
        "services_by_process": {k: _ms(v, payments) for k, v in services.get("parts", {}).items()},
        "database_by_database": {k: _ms(v, payments) for k, v in database.get("parts", {}).items()},
    }
    if load_cpu:
        result["load_generator"] = _ms(load_cpu["cpu_seconds"], payments)
        result["load_generator_source"] = "Locust processes, test start to stop"
        result["load_generator_per_request"] = _ms(load_cpu["cpu_seconds"], requests)
        result["load_generator_system_per_request"] = _ms(
            load_cpu.get("system_cpu_seconds", 0.0), requests
        )
        result["load_generator_whole_process"] = _ms(loadgen.get("cpu_seconds", 0.0), payments)
    if baseline:
        result["baseline_database_per_transfer"] = {
            mode: figures.get("cpu_ms_per_transfer", {}).get("database")
            for mode, figures in baseline.get("modes", {}).items()
        }
    if cross:
        result["central_bank_per_cross_operator_payment"] = {
            "service": _ms(services.get("parts", {}).get("central bank", 0.0), cross),
            "database": _ms(database.get("parts", {}).get("central bank", 0.0), cross),
        }
    return result


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def cpu_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, CPU ms per payment, of which) rows: the signed HTTP payments' services, database
    and load generator, their parts, and the batch API's. For bench.md and the console."""
    per = result.get("cpu_ms_per_payment") or {}
    api = result["api"]
    rows: list[tuple[str, str, str]] = []
    if per:
        rows.append(
            (
                "services",
                _fmt(per["services"]),
                ", ".join(f"{k} {_fmt(v)}" for k, v in per["services_by_process"].items()),
            )
        )
        rows.append(
            (
                "database",
                _fmt(per["database"]),
                ", ".join(f"{k} {_fmt(v)}" for k, v in per["database_by_database"].items()),
            )
        )
        pgbench = per.get("baseline_database_per_transfer") or {}
        if any(v is not None for v in pgbench.values()):
            rows.append(
                (
                    "database, pgbench baseline (per transfer)",
                    _fmt(pgbench.get("function")),
                    ", ".join(f"{k} {_fmt(v)}" for k, v in pgbench.items()),
                )
            )
        processes = api.get("processes", 1)
        detail = f"{processes} Locust process{'es' if processes > 1 else ''}; " + (
            f"{_fmt(per.get('load_generator_per_request'))} per request (reads included), "
            f"of which system {_fmt(per.get('load_generator_system_per_request'))}"
            if "load_generator_per_request" in per
            else per["load_generator_source"]
        )
        rows.append(("load generator (Locust)", _fmt(per["load_generator"]), detail))
        cb = per.get("central_bank_per_cross_operator_payment")
        if cb:
            rows.append(
                (
                    "central bank, per cross-operator payment",
                    _fmt((cb["service"] or 0) + (cb["database"] or 0)),
                    f"service {_fmt(cb['service'])}, database {_fmt(cb['database'])}",
                )
            )
    batch = result.get("batch_api") or {}
    bper = batch.get("cpu_ms_per_payment")
    if bper:
        rows.append(
            (
                "batch API: services / database / client",
                f"{_fmt(bper['services'])} / {_fmt(bper['database'])} / "
                f"{_fmt(bper['load_generator'])}",
                ", ".join(f"{k} {_fmt(v)}" for k, v in bper["services_by_process"].items()),
            )
        )
    return rows


def cpu_markdown(result: dict[str, Any]) -> list[str]:
    rows = cpu_rows(result)
    if not rows:
        return []
    lines = ["| CPU per payment | ms | of which (ms per payment) |", "|---|---:|---|"]
    lines += [f"| {what} | {ms} | {detail} |" for what, ms, detail in rows]
    return lines
