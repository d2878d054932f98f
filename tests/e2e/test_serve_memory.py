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
PEAK_LIMIT_MIB = 300


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.slow
@pytest.mark.security(3, "200 concurrent logins keep the server under 300 MiB")
def test_200_concurrent_logins_stay_under_300_mib(tmp_path: Path, figure: Figure) -> None:
    """200 logins at once (Argon2id, 64 MiB each): the server's peak RSS stays under 300 MiB."""
    statuses: list[int] = []
    lock = threading.Lock()
    # Two slots, as on the 2-core machine the figure was set for; the default is one per core.
    with serve(
        tmp_path, ADMIN_PASSWORD, trust_forwarded_for="true", password_workers="2"
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
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        peak = _peak_rss_mib(server.process.pid)
    figure("concurrent logins", LOGINS)
    figure("peak RSS MiB", round(peak))
    assert statuses == [200] * LOGINS
    assert peak <= PEAK_LIMIT_MIB, f"peak RSS {peak:.0f} MiB"
