"""CPU time split between the load generator, the services and the database during a run.

A sampler thread reads the user + system CPU time of every process in each group about once a
second (psutil). A process's share is its last reading minus its first (zero for processes born
during the run), so processes that come and go (Locust workers, PostgreSQL backends) count as
long as they were seen once; the sampler reads right before they are stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil

# A group: a name and a function returning the root pids whose whole process trees belong to it.
Roots = Callable[[], list[int]]


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return None


class CpuSampler:
    def __init__(self, groups: dict[str, Roots], interval: float = 1.0) -> None:
        self.groups = groups
        self.interval = interval
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._started = 0.0
        self._elapsed = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def sample(self, *, initial: bool = False) -> None:
        """Read every group's processes now (also called by the owner right before a group's
        processes exit, so their last CPU time is kept)."""
        for name, roots in self.groups.items():
            for root in roots():
                for process in _tree(root):
                    value = _cpu(process)
                    if value is None:
                        continue
                    key = (name, process.pid)
                    if key not in self._first:
                        self._first[key] = value if initial else 0.0
                    self._last[key] = value

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self._started = time.perf_counter()
        self.sample(initial=True)
        self._thread.start()

    def stop(self) -> None:
        self.sample()
        self._elapsed = time.perf_counter() - self._started
        self._stop.set()
        self._thread.join(timeout=5)

    def split(self) -> dict[str, dict[str, float]]:
        """Per group: CPU seconds, cores busy on average, and share of all the CPU used."""
        seconds = {name: 0.0 for name in self.groups}
        for (name, pid), last in self._last.items():
            seconds[name] += max(0.0, last - self._first.get((name, pid), 0.0))
        total = sum(seconds.values()) or 1.0
        elapsed = self._elapsed or 1.0
        return {
            name: {
                "cpu_seconds": round(value, 2),
                "cores": round(value / elapsed, 2),
                "share": round(value / total, 3),
            }
            for name, value in seconds.items()
        }


def postgres_roots(postmaster_pid_file: str | None) -> Roots:
    """The embedded server's postmaster (its backends are its children), or, for a server we
    did not start, every process named postgres on this machine."""

    def roots() -> list[int]:
        if postmaster_pid_file:
            try:
                with open(postmaster_pid_file) as f:
                    return [int(f.readline().strip())]
            except (OSError, ValueError):
                return []
        return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]

    return roots
