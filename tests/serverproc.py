"""``mailctl serve`` as its own process, as an admin runs it, with its output in files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.liveserver import free_port

START_TIMEOUT = 30.0


@dataclass
class ServeProcess:
    url: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    data_dir: Path

    def output(self) -> bytes:
        """Everything the process wrote to stdout and stderr so far."""
        return self.stdout.read_bytes() + self.stderr.read_bytes()


def mailctl_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a mailctl process using ``data_dir``, plus MAILCTL_<KEY> settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILCTL_")}
    env["MAILCTL_DATA_DIR"] = str(data_dir)
    for key, value in settings.items():
        env[f"MAILCTL_{key.upper()}"] = value
    return env


@contextmanager
def serve(
    tmp_path: Path,
    admin_password: str,
    *,
    initialise: bool = True,
    log_name: str = "serve",
    **settings: str,
) -> Iterator[ServeProcess]:
    """Run ``mailctl init`` (unless told not to), then ``mailctl serve`` on a free port.

    Its output goes to ``<log_name>.stdout`` and ``.stderr`` in ``tmp_path``: a restart on
    the same data folder under another name keeps the first run's output.
    """
    data_dir = tmp_path / "data"
    env = mailctl_env(data_dir, admin_password=admin_password, **settings)
    if initialise:
        init = subprocess.run(
            [sys.executable, "-m", "mailctl", "init"], env=env, capture_output=True, timeout=120
        )
        assert init.returncode == 0, init.stderr.decode()
    port = free_port()
    stdout, stderr = tmp_path / f"{log_name}.stdout", tmp_path / f"{log_name}.stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "mailctl", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mailctl serve did not start: {stderr.read_text()}")
            time.sleep(0.1)
        yield ServeProcess(url, process, stdout, stderr, data_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
