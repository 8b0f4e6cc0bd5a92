"""The layering (docs/architecture.md): the import-linter contracts in pyproject.toml hold, the
areas inside each tier import each other without cycles, and the wallet SDK loads no server
framework. No database."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
TIERS = ("operators", "central_bank")
SERVER_SIDE = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "psycopg", "prometheus_client")


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed (pip install -e '.[dev]')"
    done = subprocess.run(
        [lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _area_imports(graph: grimp.ImportGraph, tier: str) -> dict[str, dict[str, list[str]]]:
    """area -> imported area -> a few `importer -> imported`, for the sub-packages of `tier`."""
    areas = sorted(child for child in graph.find_children(tier) if graph.find_children(child))

    def area_of(module: str) -> str | None:
        return next((a for a in areas if module == a or module.startswith(a + ".")), None)

    edges: dict[str, dict[str, list[str]]] = {area: {} for area in areas}
    for area in areas:
        for module in sorted({area} | graph.find_descendants(area)):
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                other = area_of(imported)
                if other is not None and other != area:
                    edges[area].setdefault(other, []).append(f"{module} -> {imported}")
    return edges


def _cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one area (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("tier", TIERS)
def test_no_import_cycles_between_areas(tier: str) -> None:
    graph = grimp.build_graph(tier, cache_dir=None)
    edges = _area_imports(graph, tier)
    cycles = _cycles(edges)
    detail = [
        {a: {b: edges[a][b] for b in cycle if b in edges[a]} for a in cycle} for cycle in cycles
    ]
    assert not cycles, "areas importing each other in a cycle:\n" + json.dumps(detail, indent=2)


def test_cycle_finder_finds_a_cycle() -> None:
    edges: dict[str, dict[str, list[str]]] = {
        "t.a": {"t.b": []},
        "t.b": {"t.c": []},
        "t.c": {"t.a": []},
        "t.d": {"t.a": []},
    }
    assert _cycles(edges) == [["t.a", "t.b", "t.c"]]


def test_kernel_below_its_web_layer() -> None:
    """No kernel module outside `cbdc.web` imports it (directly or through another module)."""
    graph = grimp.build_graph("cbdc", cache_dir=None)
    web = {"cbdc.web"} | graph.find_descendants("cbdc.web")
    below = sorted(graph.find_descendants("cbdc") - web)
    upward = [m for m in below if any(graph.chain_exists(importer=m, imported=w) for w in web)]
    assert not upward, f"kernel modules importing cbdc.web: {upward}"


def test_wallet_sdk_loads_no_server_framework() -> None:
    code = (
        "import json, sys, wallets, wallets.client, wallets.keystore, wallets.certs\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(done.stdout)
    server = sorted(m for m in loaded if m.split(".")[0] in SERVER_SIDE or m.startswith("cbdc.web"))
    assert not server, f"import wallets loads {server}"
