"""wrk as the load generator: build its command line, run it, parse ``--latency`` output."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# wrk prints durations with these suffixes (its units_time table).
_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.M)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$", re.M
)


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured: throughput, latency percentiles (ms) and failures."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: int = 0
    timeouts: int = 0

    @property
    def clean(self) -> bool:
        """True when every request got a 2xx or 3xx answer and no socket failed."""
        return (
            self.requests > 0
            and self.non_2xx == 0
            and self.socket_errors == 0
            and self.timeouts == 0
        )

    def problems(self) -> str:
        """The failures in words, empty when the run was clean."""
        parts = [] if self.requests else ["no request answered within the run"]
        if self.non_2xx:
            parts.append(f"{self.non_2xx} non-2xx answers")
        if self.socket_errors:
            parts.append(f"{self.socket_errors} socket errors")
        if self.timeouts:
            parts.append(f"{self.timeouts} timeouts")
        return ", ".join(parts)


def _ms(number: str, unit: str) -> float:
    return float(number) * _TIME_UNITS[unit]


def parse(output: str) -> WrkResult:
    """Read the figures out of ``wrk --latency`` output; ValueError if any is missing."""
    percentiles = {int(p): _ms(n, u) for p, n, u in _PERCENTILE.findall(output)}
    rate = _RATE.search(output)
    total = _TOTAL.search(output)
    if rate is None or total is None or set(percentiles) != {50, 75, 90, 99}:
        raise ValueError(f"not the output of wrk --latency:\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET.search(output)
    connect = read = write = timeout = 0
    if sockets is not None:
        connect, read, write, timeout = (int(g) for g in sockets.groups())
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1000,
        rps=float(rate.group(1)),
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=connect + read + write,
        timeouts=timeout,
    )


def post_script(body: str, content_type: str = "application/x-www-form-urlencoded") -> str:
    """A wrk Lua script that sends every request as a POST with this body."""

    def lua(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {lua(body)}\n"
        f'wrk.headers["Content-Type"] = {lua(content_type)}\n'
    )


def command(
    url: str,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> list[str]:
    """The wrk command line: as many threads as connections allow, up to two (two cores)."""
    argv = [
        "wrk",
        "--latency",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        # Long enough that a slow answer counts as slow rather than as a timeout.
        "--timeout",
        "30s",
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    return [*argv, url]


def run(
    url: str,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    folder: Path | None = None,
) -> WrkResult:
    """Drive ``url`` with wrk for ``seconds``; with ``body``, every request is a form POST.

    The Lua script that sends the body is written in a temporary folder under ``folder``.
    """
    with tempfile.TemporaryDirectory(prefix="wrk-", dir=folder) as tmp:
        script = None
        if body is not None:
            script = Path(tmp) / "post.lua"
            script.write_text(post_script(body))
        argv = command(url, connections, seconds, headers, script)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse(done.stdout)
