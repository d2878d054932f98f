"""Memory of ``mailctl serve`` stays bounded under many concurrent logins."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from tests.securitylog import Figure
from tests.serverproc import serve

ADMIN_PASSWORD = "a fine admin password"
LOGINS = 200
# The target is 300 MiB. Two worker processes measure 285-300 (docs/performance.md), the
# top of that on a machine busy with other work: the test fails past a margin above it,
# and the measured peak is what docs/security.md reports.
TARGET_MIB = 300
PEAK_LIMIT_MIB = 310


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def _pss_mib(pid: int) -> float:
    """What the process costs the machine: its own pages, and its share of shared ones."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no Pss in /proc smaps_rollup")


def _server_pids(pid: int) -> list[int]:
    """The server process and its children (the worker processes, when it runs several)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


class MemoryWatch:
    """Samples the whole server's memory (the sum of its processes' PSS) while it runs.

    Summed peak RSS would count the pages the workers share (the interpreter, libraries)
    once per process; PSS counts each page once across them, as the machine spends it.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pids = _server_pids(self.pid)
                total = sum(_pss_mib(each) for each in pids)
            except (FileNotFoundError, ProcessLookupError):
                continue  # a process ended between the listing and the read
            self.peak = max(self.peak, total)
            self.processes = max(self.processes, len(pids))
            self._stop.wait(0.05)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
@pytest.mark.security(
    3,
    "200 concurrent logins keep the whole server near 300 MiB (the peak is measured; the "
    "test fails above 310 MiB)",
)
def test_200_concurrent_logins_keep_memory_bounded(tmp_path: Path, figure: Figure) -> None:
    """200 logins at once (Argon2id, 64 MiB each): the whole server (its worker processes
    added up) stays near the 300 MiB target at its peak, and never past 310 MiB."""
    statuses: list[int] = []
    lock = threading.Lock()
    # Two slots in all, as on the 2-core machine the figure was set for (the default is one
    # per core), shared by the two worker processes that serve by default there.
    with serve(
        tmp_path, ADMIN_PASSWORD, trust_forwarded_for="true", password_workers="2", workers="2"
    ) as server:
        barrier = threading.Barrier(LOGINS)

        def login(n: int) -> None:
            barrier.wait()
            response = httpx.post(
                f"{server.url}/auth",
                data={"username": "admin", "password": ADMIN_PASSWORD},
                # Each from its own address, so the throttle lets every one be checked.
                headers={"X-Forwarded-For": f"10.0.{n // 250}.{n % 250 + 1}"},
                timeout=300,
            )
            with lock:
                statuses.append(response.status_code)

        threads = [threading.Thread(target=login, args=(n,)) for n in range(LOGINS)]
        with MemoryWatch(server.process.pid) as watch:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        largest = max(_peak_rss_mib(pid) for pid in _server_pids(server.process.pid))
    figure("concurrent logins", LOGINS)
    figure("server processes", watch.processes)
    figure("peak memory MiB (all processes, PSS)", round(watch.peak))
    figure("largest process peak RSS MiB", round(largest))
    figure("target MiB", TARGET_MIB)
    assert statuses == [200] * LOGINS
    assert watch.peak <= PEAK_LIMIT_MIB, f"peak memory {watch.peak:.0f} MiB"
