"""The benchmark of issue #10: mailctl started as a user starts it, driven by wrk, as a table.

Run it through ``bench/run [--quick] [--backend sqlite|postgresql|mariadb|all]
[--sections api,hashing,bulk,scale,archive,reconcile]``; it prints a table and writes
``bench/results.json``. Absolute figures drift on a shared machine: each figure stands
beside the raw limit it is judged against, measured in the same run, and their ratio.

A section is a module ``bench/perf_<section>.py`` with ``run(ctx) -> list[Figure]``
(``figures.Figure``); a section whose file is missing is skipped with a line. Each
section gets a database of its own (created, ``mailctl init``-ed, dropped afterwards),
and ``ctx`` is a ``Bench``:

- ``ctx.quick`` (bool), ``ctx.backend`` ("sqlite", "postgresql" or "mariadb"),
  ``ctx.database_url`` (SQLAlchemy URL of the section's database), ``ctx.workdir`` (a
  folder of the section's own, removed afterwards), ``ctx.repo`` (the checkout),
  ``ctx.data_dir`` (``MAILCTL_DATA_DIR`` of the server), ``ctx.mailctl`` (the command);
- ``ctx.url``, ``ctx.token``, ``ctx.headers()`` and ``ctx.client()`` (an httpx client
  with the token) for the server that ``mailctl serve`` runs, already logged in as
  ``ctx.admin_username`` / ``ctx.admin_password``; ``ctx.server_pid`` is its process id;
- ``ctx.wrk(path, connections)`` drives the server with wrk (median of three runs, one
  in quick mode) and returns a ``wrk.WrkResult``; ``ctx.server_rss_mib()`` is the
  resident memory of the server and its children now;
- ``with ctx.fresh_server({"MAILCTL_…": "…"}) as other:`` another ``Bench`` with a
  database and a server of its own, started with extra settings.

The database has mailctl's schema and its first admin (``mailctl init`` ran) and no
other rows. A module may also define ``prepare(ctx)``, run before the server starts (to
fill the database by SQL while nothing caches it; ``ctx.state`` is a dict that carries
what it made on to ``run``), and ``NEEDS_SERVER = False`` when it drives mailctl
otherwise (``ctx.url`` and ``ctx.token`` are then None). ``MAILCTL_*`` variables of the
caller's environment reach every server; ``ctx.env`` adds more before ``start``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import wrk
from figures import Figure
from sqlalchemy import create_engine, text

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SECTIONS = ("api", "hashing", "bulk", "scale", "archive", "reconcile")
BACKENDS = ("sqlite", "postgresql", "mariadb")
SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306",
}
ADMIN = "admin"
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105 - a throwaway server's admin
# Every correct login of the POST /auth figure is counted before its password is
# checked; with 32 in flight the default limits would throttle right passwords too.
SERVER_SETTINGS = {
    "MAILCTL_HOST": "127.0.0.1",
    "MAILCTL_LOGIN_MAX_FAILURES": "1000000",
    "MAILCTL_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
    "MAILCTL_TOKEN_TTL_MINUTES": "600",
}


def ratio(value: float, limit: float) -> float | None:
    """``value / limit``, or None when the limit is zero (a run that answered nothing)."""
    return value / limit if limit else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """The process and its descendants (worker processes of a server)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants, in MiB."""
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


class RssPeak:
    """Samples a server's resident memory every 50 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_mib = max(self.peak_mib, rss_mib(self.pid))

    def __enter__(self) -> RssPeak:
        self.peak_mib = rss_mib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Databases:
    """Databases of the bench's own on one backend: created empty, dropped afterwards."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._count = 0

    @contextlib.contextmanager
    def fresh(self, data_dir: Path) -> Iterator[str]:
        """A URL to an empty database (for SQLite a file under ``data_dir``)."""
        if self.backend == "sqlite":
            yield f"sqlite:///{data_dir / 'mailctl.db'}"
            return
        self._count += 1
        name = f"mailctl_bench_{os.getpid()}_{self._count}"
        server = SERVERS[self.backend]
        engine = create_engine(
            server + ("/postgres" if self.backend == "postgresql" else "/"),
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as conn:
                if self.backend == "postgresql":
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                else:
                    conn.execute(
                        text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                    )
            yield f"{server}/{name}"
        finally:
            with engine.connect() as conn:
                if self.backend == "postgresql":
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                else:
                    conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            engine.dispose()


@dataclass
class Bench:
    """What a section gets: its settings, its database and folder, and its server."""

    quick: bool
    backend: str
    database_url: str
    workdir: Path
    repo: Path
    databases: Databases
    data_dir: Path = field(init=False)
    admin_username: str = ADMIN
    admin_password: str = ADMIN_PASSWORD
    env: dict[str, str] = field(default_factory=dict)  # extra MAILCTL_* of the server
    state: dict[str, Any] = field(default_factory=dict)  # a section's own, prepare to run
    url: str | None = None
    token: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.data_dir = self.workdir / "data"

    @property
    def mailctl(self) -> Path:
        """The ``mailctl`` command of the checkout's virtualenv."""
        return self.repo / ".venv" / "bin" / "mailctl"

    @property
    def server_pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def server_env(self) -> dict[str, str]:
        """The environment ``mailctl`` runs with: the caller's, plus the bench's settings."""
        return {
            **os.environ,
            **SERVER_SETTINGS,
            "MAILCTL_DATA_DIR": str(self.data_dir),
            "MAILCTL_DATABASE_URL": self.database_url,
            "MAILCTL_ADMIN_USERNAME": self.admin_username,
            "MAILCTL_ADMIN_PASSWORD": self.admin_password,
            **self.env,
        }

    def init(self) -> None:
        """``mailctl init``: the schema, the token secret and the first admin."""
        subprocess.run(
            [str(self.mailctl), "init"],
            env=self.server_env(),
            cwd=self.workdir,
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        """``mailctl serve`` on a free port; returns once ``/ping`` answers and logged in."""
        port = _free_port()
        log = (self.workdir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.mailctl), "serve", "--port", str(port)],
            env=self.server_env(),
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mailctl serve exited: {self.server_log_tail()}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mailctl serve did not answer: {self.server_log_tail()}")
            time.sleep(0.1)
        answer = httpx.post(
            f"{self.url}/auth",
            data={"username": self.admin_username, "password": self.admin_password},
            timeout=30,
        )
        answer.raise_for_status()
        self.token = answer.json()["token"]

    def stop(self) -> None:
        """Stop the server this bench started, by its PID; its group if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # The group is the server's own (start_new_session): its workers, nothing else.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def server_log_tail(self, lines: int = 20) -> str:
        log = self.workdir / "server.log"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )

    def headers(self) -> dict[str, str]:
        """The documented token header."""
        return {"Auth-token": self.token or ""}

    def client(self, timeout: float = 120) -> httpx.Client:
        """An httpx client of the server, with the token."""
        return httpx.Client(base_url=self.url or "", headers=self.headers(), timeout=timeout)

    @property
    def wrk_seconds(self) -> float:
        return 2 if self.quick else 10

    def wrk(
        self,
        path: str,
        connections: int,
        *,
        auth: bool = True,
        body: str | None = None,
        seconds: float | None = None,
        repeats: int | None = None,
    ) -> wrk.WrkResult:
        """wrk on ``path``: the run of median throughput out of three (one when quick).

        One request goes first and is waited for: requests of an earlier run that the
        server still works through (wrk does not wait for them) would otherwise eat the
        start of this one, and it warms what the path uses.
        """
        headers = self.headers() if auth else {}
        with httpx.Client(base_url=self.url or "", headers=headers, timeout=300) as client:
            if body is None:
                client.get(path)
            else:
                form = {"Content-Type": "application/x-www-form-urlencoded"}
                client.post(path, content=body, headers=form)
        runs = [
            wrk.run(
                f"{self.url}{path}",
                connections,
                seconds or self.wrk_seconds,
                headers=self.headers() if auth else None,
                body=body,
                folder=self.workdir,
            )
            for _ in range(repeats or (1 if self.quick else 3))
        ]
        return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]

    def server_rss_mib(self) -> float:
        return rss_mib(self.server_pid) if self.server_pid else 0.0

    @contextlib.contextmanager
    def fresh_server(self, env: dict[str, str] | None = None) -> Iterator[Bench]:
        """Another database and server beside this one, with extra ``MAILCTL_*`` settings."""
        folder = Path(tempfile.mkdtemp(prefix="server-", dir=self.workdir))
        with self.databases.fresh(folder / "data") as url:
            other = Bench(self.quick, self.backend, url, folder, self.repo, self.databases)
            other.env = {**self.env, **(env or {})}
            try:
                other.init()
                other.start()
                yield other
            finally:
                other.stop()


def load_section(name: str) -> ModuleType | None:
    """``bench/perf_<name>.py``, or None when this build has no such file."""
    if not (BENCH / f"perf_{name}.py").exists():
        return None
    return importlib.import_module(f"perf_{name}")


def run_section(
    name: str, module: ModuleType, quick: bool, backend: str, workdir: Path
) -> list[Figure]:
    """One section on a database and server of its own; a failure becomes a figure."""
    databases = Databases(backend)
    folder = workdir / f"{backend}-{name}"
    folder.mkdir()
    started = time.perf_counter()
    try:
        with databases.fresh(folder / "data") as url:
            ctx = Bench(quick, backend, url, folder, REPO, databases)
            try:
                ctx.init()
                prepare = getattr(module, "prepare", None)
                if prepare is not None:
                    prepare(ctx)
                if getattr(module, "NEEDS_SERVER", True):
                    ctx.start()
                figures: list[Figure] = module.run(ctx)
            finally:
                ctx.stop()
    except Exception as exc:  # one section's failure must not hide the others' figures
        traceback.print_exc()
        detail = (
            exc.stderr.decode(errors="replace")
            if isinstance(exc, subprocess.CalledProcessError) and exc.stderr
            else ""
        )
        return [
            Figure(name, "section failed", 0, "", met=False, note=f"{exc} {detail}".strip()[:300])
        ]
    print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return figures


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    """The figures as a plain-text table: figure, raw limit, ratio, target, met."""
    head = ("section", "figure", "value", "raw limit", "limit", "ratio", "target", "met")
    rows = [head]
    notes = []
    for f in figures:
        met = "—" if f.met is None else ("yes" if f.met else "NO")
        value = f"{_number(f.value)} {f.unit}".strip() if f.unit or f.value else "—"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "—"
        limit = _number(f.limit_value) if f.limit_value is not None else "—"
        rows.append(
            (f.section, f.name, value, f.limit_name or "—", limit, ratio, f.target or "—", met)
        )
        if f.note:
            notes.append(f"  {f.section} / {f.name}: {f.note}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def machine(quick: bool) -> dict[str, Any]:
    """What the figures were measured on, and which build of mailctl."""
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "wrk": wrk_version.split(" Copyright")[0],
        "commit": subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
    }


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # Turn SIGTERM into an exception so the servers are stopped on the way out.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under two minutes")
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="sqlite")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    parser.add_argument("--output", type=Path, default=BENCH / "results.json")
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".bench-work", help="where the data folders go"
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (bench/run installs it)")
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    info = machine(args.quick)
    print(
        f"mailctl {info['commit']} benchmark: {info['cores']} cores, "
        f"Python {info['python']}, {info['wrk']}, load {info['load_average']}, "
        f"{'quick' if args.quick else 'full'} size",
        flush=True,
    )
    args.workdir.mkdir(mode=0o700, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir))
    runs = []
    started = time.perf_counter()
    try:
        for backend in backends:
            figures: list[Figure] = []
            print(f"\n== {backend}", flush=True)
            for name in sections:
                module = load_section(name)
                if module is None:
                    print(f"  {name}: skipped (bench/perf_{name}.py is not on this build)")
                    continue
                figures += run_section(name, module, args.quick, backend, workdir)
            print(f"\n{backend}:\n{table(figures)}", flush=True)
            runs.append({"backend": backend, "figures": [f.as_json() for f in figures]})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    info["seconds"] = round(time.perf_counter() - started, 1)
    # Other work on the machine shows here: figures taken under load are not comparable.
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    args.output.write_text(json.dumps({"machine": info, "runs": runs}, indent=2) + "\n")
    print(
        f"\n{info['seconds']:.0f} s in all, load {info['load_average_end']} at the end; "
        f"figures written to {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
