"""CPU time split between the load generator, the services and the database during a run.

A sampler thread reads the user + system CPU time of every process in each group about once a
second (psutil). A process's share is its last reading minus its first (zero for processes born
during the run), so processes that come and go (Locust workers, PostgreSQL backends) count as
long as they were seen once; the sampler reads right before they are stopped.

Each group may also name the part of it a process belongs to (`Labels`): the services by
service (the central bank, each operator), the database by the database a backend serves (its
process title says which) and the server's own processes (WAL writer, checkpointer, ...).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import psutil

# A group: a name and a function returning the root pids whose whole process trees belong to it.
Roots = Callable[[], list[int]]
# Optionally, which part of the group a process is: from the process and its root's pid.
Labels = Callable[[psutil.Process, int], str]


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
    def __init__(
        self,
        groups: dict[str, Roots],
        interval: float = 1.0,
        labels: Mapping[str, Labels] | None = None,
    ) -> None:
        self.groups = groups
        self.labels = dict(labels or {})
        self.interval = interval
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._part: dict[tuple[str, int], str] = {}
        self._started = 0.0
        self._elapsed = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def sample(self, *, initial: bool = False) -> None:
        """Read every group's processes now (also called by the owner right before a group's
        processes exit, so their last CPU time is kept)."""
        for name, roots in self.groups.items():
            label = self.labels.get(name)
            for root in roots():
                for process in _tree(root):
                    value = _cpu(process)
                    if value is None:
                        continue
                    key = (name, process.pid)
                    if key not in self._first:
                        self._first[key] = value if initial else 0.0
                        if label is not None:
                            self._part[key] = label(process, root)
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

    @property
    def elapsed(self) -> float:
        return self._elapsed

    def split(self) -> dict[str, dict]:
        """Per group: CPU seconds, cores busy on average, share of all the CPU used, and (for
        groups with labels) CPU seconds by part."""
        seconds = {name: 0.0 for name in self.groups}
        parts: dict[str, dict[str, float]] = {name: {} for name in self.labels}
        for key, last in self._last.items():
            name = key[0]
            used = max(0.0, last - self._first.get(key, 0.0))
            seconds[name] += used
            if key in self._part:
                part = parts[name]
                part[self._part[key]] = part.get(self._part[key], 0.0) + used
        total = sum(seconds.values()) or 1.0
        elapsed = self._elapsed or 1.0
        result: dict[str, dict] = {}
        for name, value in seconds.items():
            row: dict = {
                "cpu_seconds": round(value, 2),
                "cores": round(value / elapsed, 2),
                "share": round(value / total, 3),
            }
            if name in parts:
                row["parts"] = {k: round(v, 2) for k, v in sorted(parts[name].items())}
            result[name] = row
        return result


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


SERVER = "server (WAL, checkpoints, vacuum)"


def postgres_labels(databases: Mapping[str, str]) -> Labels:
    """A backend's part is the service whose database it serves (`databases`: database name to
    a label); its process title is `postgres: <user> <database> <client> <activity>`. The
    server's own processes (postmaster, WAL writer, checkpointer, autovacuum) are `SERVER`;
    backends of other databases (pgbench's, anyone's) are `other`."""

    def label(process: psutil.Process, root: int) -> str:
        try:
            title = process.cmdline()
        except psutil.Error:
            return SERVER
        words = " ".join(title).split()
        if (
            len(words) >= 4
            and words[0] == "postgres:"
            and ("(" in words[3] or words[3] == "[local]")
        ):
            return databases.get(words[2], "other")
        return SERVER

    return label


def root_labels(names: Callable[[], Mapping[int, str]]) -> Labels:
    """A process's part is the name of the root it descends from (a service and its uvicorn
    workers are one part)."""

    def label(process: psutil.Process, root: int) -> str:
        return names().get(root, "other")

    return label


def tree_cpu(pid: int) -> float | None:
    """CPU seconds a process tree has used so far, exits included: the root's own time, what
    its exited children used (the kernel adds a child's time to its parent's when the parent
    reaps it: PostgreSQL's postmaster reaps every backend), and its live descendants' time.
    Read twice, the difference counts the backends born and gone in between, which sampling
    would miss."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            value = _cpu(child)
            total += value or 0.0
    except psutil.Error:
        return None
    return float(total)
