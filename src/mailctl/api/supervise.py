"""Worker processes forked from one parent that has loaded the code and bound the socket.

The parent imports the app's modules once, then forks the workers: they share those pages
with it (and each other) instead of each loading its own copy, and start in a moment. The
parent serves nothing and opens no database connection; each worker builds its own app
(its own engine and pool) after the fork. A worker that dies is started again; SIGTERM,
SIGINT or SIGHUP stops them all, each finishing the requests it holds.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("mailctl.serve")

# A worker that exits with an error this soon after it started failed to start: starting
# it again would fail the same way, so the server stops instead of forking without end.
START_GRACE_SECONDS = 5.0
# How long the workers get to finish their requests once told to stop.
STOP_SECONDS = 30.0
# glibc's mallopt(M_ARENA_MAX): a worker runs dozens of threads, and glibc would give
# each its own malloc arena, keeping freed memory (a finished hash's request) in every one.
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


# prctl(PR_SET_PDEATHSIG): the kernel kills a worker whose parent died (even by SIGKILL),
# so no worker goes on serving, and holding the port, without its supervisor. A server
# killed outright dies whole, as one process would: the next start settles its leftovers.
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such call
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died between the fork and the call above
        os._exit(1)


def _few_malloc_arenas() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its own policy
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The listening socket every worker accepts on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Forks ``workers`` children that each call ``run_worker(sock)``; keeps them running."""

    def __init__(
        self, sock: socket.socket, workers: int, run_worker: Callable[[socket.socket], None]
    ) -> None:
        self.sock = sock
        self.workers = workers
        self.run_worker = run_worker
        self.children: dict[int, float] = {}  # pid -> when it started
        self.stopping = False
        self.failed = False

    def _fork(self) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            _die_with_parent(parent)
            code = 0
            try:
                self.run_worker(self.sock)
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                # os._exit skips the interpreter's own exit: flush what is buffered (the
                # access log goes to standard output, buffered when that is a file).
                logging.shutdown()
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                os._exit(code)
        self.children[pid] = time.monotonic()
        log.info("started worker process %d", pid)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        """Serve until a signal stops the server; the exit status it should end with."""
        # Objects loaded so far are never collected: the collector would otherwise write
        # to their pages in every worker and undo the sharing.
        gc.freeze()
        _few_malloc_arenas()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop)
        for _ in range(self.workers):
            self._fork()
        while not self.stopping:
            self._reap()
            if self.failed:
                self.stopping = True
                break
            while len(self.children) < self.workers and not self.stopping:
                self._fork()
            time.sleep(0.2)
        self._terminate()
        return 1 if self.failed else 0

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            started = self.children.pop(pid, None)
            if started is None or self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            # Killed by a signal (negative) is not a failure to start: start another.
            if code > 0 and time.monotonic() - started < START_GRACE_SECONDS:
                log.error("worker process %d failed to start (exit %d); stopping", pid, code)
                self.failed = True
            else:
                log.warning("worker process %d died (exit %d); starting another", pid, code)

    def _terminate(self) -> None:
        for pid in list(self.children):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while self.children and time.monotonic() < deadline:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
            else:
                self.children.pop(pid, None)
        for pid in list(self.children):
            log.warning("worker process %d did not stop in time; killing it", pid)
            _signal(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.children.clear()


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def run_uvicorn(app_factory: Callable[[], Any], options: dict[str, Any]) -> Callable[..., None]:
    """The body of a worker: build the app, serve on the inherited socket."""

    def run(sock: socket.socket) -> None:
        import uvicorn

        config = uvicorn.Config(app_factory(), **options)
        uvicorn.Server(config).run(sockets=[sock])

    return run


def serve_forked(
    host: str, port: int, workers: int, app_factory: Callable[[], Any], options: dict[str, Any]
) -> None:
    """Bind, fork ``workers`` uvicorn workers, supervise them; exits with their status."""
    # The supervisor's own lines, as uvicorn writes its own; the workers' logging is
    # uvicorn's, as with one process.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        sock = bind(host, port)
    except OSError as error:
        log.error("cannot listen on %s:%d: %s", host, port, error.strerror or error)
        sys.exit(1)
    log.info("mailctl listening on http://%s:%d with %d worker processes", host, port, workers)
    status = Supervisor(sock, workers, run_uvicorn(app_factory, options)).run()
    sock.close()
    log.info("stopped")
    sys.exit(status)
