"""What this machine's raw PostgreSQL does for a simple money transfer, measured with pgbench.

`cbdc bench` calls `measure` in the same run as its HTTP load test, so the API's rate can be
reported as a ratio to the database underneath it. On a throw-away database (always dropped) it
seeds `accounts` and an empty `transfers` journal, then runs pgbench once per mode with durable
commits (the server's fsync / synchronous_commit settings are left alone):

- `statements`: BEGIN; two conditional UPDATEs (lower id first, signed deltas); INSERT; END —
  the client reads each UPDATE's row count (`\\gset`) and rolls back if the debit lacked funds
  (never, with the seeded balances; pgbench would count such a rollback as a transaction).
- `function`: one call of the plpgsql function `transfer(debit, credit, amount)`: one round trip.
- `batched`: one call of `transfer_batch(n, accounts)`: n random transfers in one transaction,
  touched accounts locked in ascending id order, net deltas in one UPDATE, n journal rows in one
  INSERT. Its latencies are per batch; transfers/s = transactions/s × n.

Latency percentiles come from pgbench's per-transaction log; CPU milliseconds per transfer from
the server's process tree (when it runs on this machine: exited backends included) and from
pgbench itself, for comparing with the API's CPU per payment. Afterwards the sum of balances must
be unchanged and no balance negative: the baseline conserves money too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from cbdc.db import create_database, drop_database
from cbdc.pg import find_bin_dir
from loadtest.cpu import tree_cpu

INITIAL_BALANCE = 10**12  # minor units: no transfer in a run can exhaust an account
MAX_AMOUNT = 100

SCHEMA = f"""
CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE transfers (id bigserial PRIMARY KEY, debit bigint NOT NULL, credit bigint NOT NULL,
                        amount bigint NOT NULL, at timestamptz NOT NULL DEFAULT now());

CREATE FUNCTION transfer(p_debit bigint, p_credit bigint, p_amount bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    lo bigint := least(p_debit, p_credit);
    hi bigint := greatest(p_debit, p_credit);
    transfer_id bigint;
BEGIN
    IF p_debit = p_credit OR p_amount <= 0 THEN
        RAISE EXCEPTION 'invalid transfer' USING ERRCODE = '22023';
    END IF;
    -- Rows are written lower id first, so concurrent transfers cannot deadlock; only the
    -- debit's UPDATE is conditional, and a failed one rolls the whole transfer back.
    UPDATE accounts SET balance = balance + CASE WHEN lo = p_debit THEN -p_amount ELSE p_amount END
     WHERE id = lo AND (lo <> p_debit OR balance >= p_amount);
    IF FOUND THEN
        UPDATE accounts SET balance = balance
               + CASE WHEN hi = p_debit THEN -p_amount ELSE p_amount END
         WHERE id = hi AND (hi <> p_debit OR balance >= p_amount);
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insufficient funds in account %', p_debit USING ERRCODE = 'P0001';
    END IF;
    INSERT INTO transfers (debit, credit, amount) VALUES (p_debit, p_credit, p_amount)
    RETURNING id INTO transfer_id;
    RETURN transfer_id;
END $$;

CREATE FUNCTION transfer_batch(n int, naccounts bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    debits bigint[];
    credits bigint[];
    amounts bigint[];
    locked int;
    applied int;
BEGIN
    -- credit = 1 + (debit + r) % naccounts with r < naccounts - 1 is never the debit.
    SELECT array_agg(d), array_agg(1 + (d + r) % naccounts), array_agg(a)
      INTO debits, credits, amounts
      FROM (SELECT 1 + floor(random() * naccounts)::bigint AS d,
                   floor(random() * (naccounts - 1))::bigint AS r,
                   1 + floor(random() * {MAX_AMOUNT})::bigint AS a
              FROM generate_series(1, n)) draws;
    PERFORM 1 FROM accounts WHERE id = ANY (debits || credits) ORDER BY id FOR UPDATE;
    GET DIAGNOSTICS locked = ROW_COUNT;
    UPDATE accounts SET balance = balance + net.delta
      FROM (SELECT id, sum(delta) AS delta
              FROM (SELECT t.id, -t.amount AS delta FROM unnest(debits, amounts) t(id, amount)
                    UNION ALL
                    SELECT t.id, t.amount FROM unnest(credits, amounts) t(id, amount)) legs
             GROUP BY id) net
     WHERE accounts.id = net.id AND accounts.balance + net.delta >= 0;
    GET DIAGNOSTICS applied = ROW_COUNT;
    IF applied <> locked THEN
        RAISE EXCEPTION 'insufficient funds in the batch' USING ERRCODE = 'P0001';
    END IF;
    INSERT INTO transfers (debit, credit, amount)
    SELECT * FROM unnest(debits, credits, amounts);
    RETURN n;
END $$;
"""

DRAW_PAIR = f"""\\set d random(1, :naccounts)
\\set c 1 + (:d + random(0, :naccounts - 2)) % :naccounts
\\set amt random(1, {MAX_AMOUNT})
"""

SCRIPTS = {
    "statements": DRAW_PAIR
    + """\\set lo least(:d, :c)
\\set hi greatest(:d, :c)
\\set dlo CASE WHEN :lo = :d THEN -:amt ELSE :amt END
BEGIN;
WITH moved AS (UPDATE accounts SET balance = balance + :dlo
               WHERE id = :lo AND balance + :dlo >= 0 RETURNING 1)
SELECT count(*) AS lo_moved FROM moved \\gset
WITH moved AS (UPDATE accounts SET balance = balance - :dlo
               WHERE id = :hi AND balance - :dlo >= 0 RETURNING 1)
SELECT count(*) AS hi_moved FROM moved \\gset
\\if :lo_moved + :hi_moved = 2
INSERT INTO transfers (debit, credit, amount) VALUES (:d, :c, :amt);
END;
\\else
ROLLBACK;
\\endif
""",
    "function": DRAW_PAIR + "SELECT transfer(:d, :c, :amt);\n",
    "batched": "SELECT transfer_batch(:batch, :naccounts);\n",
}


def _pg_env(database_url: str) -> dict[str, str]:
    """libpq environment for pgbench, from a SQLAlchemy URL."""
    url = make_url(database_url)
    query_host = url.query.get("host")
    host = url.host or (query_host if isinstance(query_host, str) else None)
    passfile = url.query.get("passfile")  # the embedded server's password file
    settings = {
        "PGHOST": host,
        "PGPORT": str(url.port) if url.port else None,
        "PGUSER": url.username,
        "PGPASSWORD": url.password,
        "PGDATABASE": url.database,
        "PGPASSFILE": passfile if isinstance(passfile, str) else None,
    }
    return {**os.environ, **{k: str(v) for k, v in settings.items() if v is not None}}


def _parse_summary(output: str) -> tuple[float, int]:
    """(tps, failed transactions) from pgbench's summary, across pgbench versions."""
    # 14+: "tps = N (without initial connection time)"; older: "(excluding connections ...)"
    tps_lines = re.findall(r"^tps = ([\d.]+)(.*)$", output, re.MULTILINE)
    if not tps_lines:
        raise RuntimeError(f"no tps line in pgbench output:\n{output}")
    preferred = [v for v, label in tps_lines if "without" in label or "excluding" in label]
    failed = re.search(r"^number of failed transactions: (\d+)", output, re.MULTILINE)
    return float((preferred or [tps_lines[0][0]])[0]), int(failed[1]) if failed else 0


def _read_latencies_ms(log_files: list[Path]) -> list[float]:
    """Latencies of the successful transactions: field 3 of each log line, in microseconds
    ("failed" / "skipped" otherwise)."""
    latencies = []
    for log_file in log_files:
        for line in log_file.read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1000)
    return latencies


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _run_mode(
    mode: str,
    *,
    run_dir: Path,
    env: dict[str, str],
    variables: dict[str, int],
    seconds: int,
    clients: int,
    threads: int,
    postmaster: int | None = None,
) -> dict[str, Any]:
    script = run_dir / f"script_{mode}.sql"
    script.write_text(SCRIPTS[mode])
    prefix = run_dir / f"log_{mode}"
    defines = [arg for name, value in variables.items() for arg in ("-D", f"{name}={value}")]
    cmd = [
        str(find_bin_dir() / "pgbench"),
        "-n",
        "-M",
        "prepared",
        "-f",
        str(script),
        "-c",
        str(clients),
        "-j",
        str(threads),
        "-T",
        str(seconds),
        "--log",
        f"--log-prefix={prefix}",
        *defines,
    ]
    server_before = tree_cpu(postmaster) if postmaster else None
    client_before = _children_cpu()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=run_dir)
    client_seconds = _children_cpu() - client_before  # pgbench's CPU, every thread
    server_after = None
    if postmaster:
        _wait_backends_gone(postmaster, env["PGDATABASE"])  # and reaped: their CPU is counted
        server_after = tree_cpu(postmaster)
    if done.returncode != 0:
        raise RuntimeError(
            f"pgbench ({mode}) failed with exit code {done.returncode}:\n{done.stderr.strip()}"
        )
    tps, failed = _parse_summary(done.stdout)
    latencies = sorted(_read_latencies_ms(sorted(run_dir.glob(f"log_{mode}.*"))))
    if not latencies:
        raise RuntimeError(f"pgbench ({mode}) logged no successful transaction:\n{done.stdout}")
    per_transaction = variables["batch"] if mode == "batched" else 1
    result: dict[str, Any] = {
        "tps": tps,
        "transfers_per_s": tps * per_transaction,
        "latency_ms": {
            "p50": _percentile(latencies, 50),
            "p95": _percentile(latencies, 95),
            "p99": _percentile(latencies, 99),
            "mean": sum(latencies) / len(latencies),
        },
        "latency_per": "batch" if mode == "batched" else "transfer",
        "failed": failed,
    }
    if mode == "batched":
        result["batch"] = per_transaction
    transfers = len(latencies) * per_transaction  # every transaction pgbench logged
    database_ms = (
        round(1000 * (server_after - server_before) / transfers, 4)
        if server_before is not None and server_after is not None
        else None
    )
    result["cpu_ms_per_transfer"] = {
        "database": database_ms,  # the whole server: backends, WAL writer, checkpointer
        "pgbench": round(1000 * client_seconds / transfers, 4),
    }
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # exited and waited-for children
    return usage.ru_utime + usage.ru_stime


def _wait_backends_gone(postmaster: int, database: str, timeout: float = 5.0) -> None:
    """Until the backends that served `database` have exited and the postmaster has reaped
    them (a backend between the two is counted nowhere), for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = psutil.Process(postmaster).children()
            busy = False
            for child in children:
                if child.status() == psutil.STATUS_ZOMBIE or database in " ".join(child.cmdline()):
                    busy = True
                    break
        except psutil.NoSuchProcess:
            continue  # a child went while we looked: look again
        except psutil.Error:
            return
        if not busy:
            return
        time.sleep(0.02)


def _postmaster(conn: Connection) -> int | None:
    """The server's postmaster when it runs on this machine (the parent of our backend), for
    the database's CPU per transfer; None when it cannot be seen."""
    backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    try:
        parent = psutil.Process(int(backend)).parent()
        if parent is not None and parent.name().startswith("postgres"):
            return parent.pid
    except psutil.Error:
        pass
    return None


def _balances(conn: Connection) -> tuple[int, int]:
    total, lowest = conn.execute(text("SELECT sum(balance), min(balance) FROM accounts")).one()
    return int(total), int(lowest)


def measure(
    server_url: str,
    *,
    accounts: int = 100_000,
    seconds: float = 10.0,
    clients: int = 8,
    threads: int = 2,
    batch: int = 100,
    modes: Sequence[str] = ("statements", "function", "batched"),
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Transfers/s and latency percentiles of raw PostgreSQL per mode (see the module doc).
    pgbench's logs and scripts stay in `work_dir` (a fresh subdirectory) when given."""
    unknown = set(modes) - SCRIPTS.keys()
    if unknown or accounts < 2 or batch < 1:
        raise ValueError(
            f"bad arguments: modes {sorted(unknown)}, accounts {accounts}, batch {batch}"
        )
    whole_seconds = max(1, round(seconds))  # pgbench -T takes whole seconds
    name = f"cbdc_pgbaseline_{uuid.uuid4().hex[:12]}"
    database_url = create_database(server_url, name)
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            server_version = conn.execute(text("SHOW server_version")).scalar_one()
            postmaster = _postmaster(conn)
            # psycopg itself: no placeholder parsing, and several statements in one execute.
            conn.connection.driver_connection.execute(SCHEMA)  # type: ignore[union-attr]
            conn.execute(
                text("INSERT INTO accounts SELECT i, :b FROM generate_series(1, :n) i"),
                {"b": INITIAL_BALANCE, "n": accounts},
            )
            conn.execute(text("VACUUM ANALYZE accounts"))
            conn.execute(text("VACUUM ANALYZE transfers"))
            before, _ = _balances(conn)
        engine.dispose()  # no backend of ours left open: each mode's backends are pgbench's
        if postmaster:
            _wait_backends_gone(postmaster, name)
        with tempfile.TemporaryDirectory(prefix="cbdc-pgbaseline-") as scratch:
            run_dir = work_dir / name if work_dir else Path(scratch)
            run_dir.mkdir(parents=True, exist_ok=True)
            results = {
                mode: _run_mode(
                    mode,
                    run_dir=run_dir,
                    env=_pg_env(database_url),
                    variables={"naccounts": accounts, "batch": batch},
                    seconds=whole_seconds,
                    clients=clients,
                    threads=threads,
                    postmaster=postmaster,
                )
                for mode in modes
            }
        with engine.connect() as conn:
            after, lowest = _balances(conn)
    finally:
        engine.dispose()
        drop_database(server_url, database_url)
    return {
        "server_version": server_version,
        "accounts": accounts,
        "clients": clients,
        "threads": threads,
        "seconds": whole_seconds,
        "modes": results,
        "conservation": {
            "balance_before": before,
            "balance_after": after,
            "ok": before == after and lowest >= 0,
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("server_url", help="e.g. postgresql+psycopg://user@127.0.0.1:5432/postgres")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--modes", nargs="+", default=list(SCRIPTS), choices=list(SCRIPTS))
    parser.add_argument("--work-dir", type=Path, help="keep pgbench's scripts and logs here")
    args = parser.parse_args(argv)
    result = measure(
        args.server_url,
        accounts=args.accounts,
        seconds=args.seconds,
        clients=args.clients,
        threads=args.threads,
        batch=args.batch,
        modes=args.modes,
        work_dir=args.work_dir,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
