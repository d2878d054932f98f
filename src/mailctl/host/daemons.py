"""Carrying out a reconcile plan: atomic writes, deletes, reloads, and rollback on failure."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailctl.host import command
from mailctl.host.changes import FileChanges
from mailctl.host.command import tail
from mailctl.host.install import is_running
from mailctl.host.plan import ActualFile, Plan

STDERR_TAIL_CHARS = 500
TIMEOUT = "timeout"
NOT_RUNNABLE = "not runnable"
NOT_RUNNING = "not running"
# What a reload command prints when its daemon is not running: init scripts ("opendkim
# is not running"), `systemctl reload` of a stopped unit ("... is not active, cannot
# reload").
_NOT_RUNNING_SAYINGS = ("is not running", "is not active")
# From this many files on, writes are flushed to disk in batches rather than one by one
# (two fsyncs per file make a first reconcile of 10,000 domains take many seconds).
BATCH_FROM = 16


@dataclass(frozen=True)
class ReloadFailure:
    """A daemon whose reload did not succeed; ``status`` is the exit code or why it did not run."""

    daemon: str
    status: int | str
    stderr_tail: str


@dataclass(frozen=True)
class ApplyResult:
    """What apply did, and which reloads failed (their files were put back as before)."""

    written: tuple[Path, ...] = ()
    deleted: tuple[Path, ...] = ()
    reloaded: tuple[str, ...] = ()
    failures: tuple[ReloadFailure, ...] = ()
    restored: tuple[Path, ...] = ()
    # Daemons not reloaded because they do not run: they read the new files when started.
    not_running: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every reload that was needed succeeded."""
        return not self.failures


def run_reload(daemon: str, argv: Sequence[str], timeout: float) -> ReloadFailure | None:
    """Run one reload command (no shell); return None on success, else what went wrong.

    A reload that failed only because the daemon does not run comes back with the status
    NOT_RUNNING: nothing refused the files, and the daemon reads them when it starts.
    """
    if not argv:
        return None
    ran = command.run(argv, timeout)
    if ran.timed_out:
        return ReloadFailure(daemon, TIMEOUT, tail(ran.stderr, STDERR_TAIL_CHARS))
    if not ran.started:
        return ReloadFailure(daemon, NOT_RUNNABLE, ran.stderr)
    if ran.status == 0:
        return None
    output = tail(ran.output, STDERR_TAIL_CHARS)
    if _not_running(argv, ran.status, output, timeout):
        return ReloadFailure(daemon, NOT_RUNNING, output)
    return ReloadFailure(daemon, ran.status, tail(ran.stderr, STDERR_TAIL_CHARS))


def _not_running(argv: Sequence[str], returncode: int, output: str, timeout: float) -> bool:
    """Whether a failed reload failed only because its daemon does not run.

    Postfix and Dovecot: their master's pid file, found through the configuration the
    reload command names (`postconf -h queue_directory`, `doveconf -h base_dir`), names no
    live process; a configuration they cannot read at all (Debian's Postfix installed with
    "No configuration" has no main.cf) runs no daemon either. `postfix reload` says why it
    failed only to the mail log, so its output cannot tell. Other commands say it in
    words (init scripts, systemctl), or, for `start-stop-daemon --stop` (OpenDKIM's init
    script, or a signal to its pid file), exit 1, which means no such process runs.
    """
    program = Path(argv[0]).name
    if program in ("postfix", "doveadm", "dovecot") and argv[-1] == "reload":
        return not _master_runs(program, argv, timeout)
    if any(saying in output.lower() for saying in _NOT_RUNNING_SAYINGS):
        return True
    if program == "start-stop-daemon":
        return returncode == 1 and ("--stop" in argv or "-K" in argv)
    return False


def _master_runs(program: str, argv: Sequence[str], timeout: float) -> bool:
    """Whether the Postfix or Dovecot master the reload command ``argv`` addresses runs."""
    options: list[str] = []
    if "-c" in argv[:-1]:
        at = list(argv).index("-c")
        options = list(argv[at : at + 2])
    if program == "postfix":
        query, setting, pid_name = "postconf", "queue_directory", "pid/master.pid"
    else:
        query, setting, pid_name = "doveconf", "base_dir", "master.pid"
    # Beside the reload's binary when it is named by path (postfix and postconf share
    # /usr/sbin); else, as for Dovecot's doveconf in /usr/bin, found on PATH.
    sibling = Path(argv[0]).parent / query
    binary = str(sibling) if "/" in argv[0] and sibling.is_file() else query
    found = command.run([binary, *options, "-h", setting], timeout)
    if found.timed_out or not found.started:
        return True  # cannot tell: treat the failure as a refusal, the safe side
    if found.status != 0:
        return False
    where = found.stdout.strip()
    return bool(where) and is_running(Path(where) / pid_name)


def apply(
    plan: Plan,
    actual: Mapping[Path, ActualFile],
    reload_commands: Mapping[str, Sequence[str]],
    timeout: float,
) -> ApplyResult:
    """Write and delete what the plan says, then reload each affected daemon once.

    ``actual`` is what gather read before planning: it holds the old bytes used to put a
    daemon's files back when its reload fails, so a daemon that refused the new files is
    never left with a config on disk it did not load. A failed write puts back the files
    already written in this run and raises HostStateError. A daemon with no command, or
    an empty one, needs no reload (the default with no mail daemons configured).
    """
    changes = FileChanges()
    with changes.undone_on_failure():
        if len(plan.writes) >= BATCH_FROM:
            changes.write_many(plan.writes, actual)
        for file in plan.writes if len(plan.writes) < BATCH_FROM else ():
            changes.write(
                file.path,
                file.content,
                file.mode,
                file.uid,
                file.gid,
                before=actual.get(file.path),
                daemons=file.daemons,
            )
        for gone in plan.deletes:
            changes.delete(gone.path, before=actual.get(gone.path), daemons=gone.daemons)
    _prune_empty_dirs(changes.deleted)

    failures: list[ReloadFailure] = []
    reloaded: list[str] = []
    not_running: list[str] = []
    for daemon in sorted(plan.daemons_to_reload):
        failure = run_reload(daemon, reload_commands.get(daemon, ()), timeout)
        if failure is None:
            reloaded.append(daemon)
        elif failure.status == NOT_RUNNING:
            not_running.append(daemon)
        else:
            failures.append(failure)

    restored: list[Path] = []
    if failures:
        # A daemon that shares the files put back and reloaded fine now holds the new
        # version; it is reloaded again so that it serves what is back on disk.
        restored, again = changes.put_back({f.daemon for f in failures})
        for daemon in sorted(again):
            failure = run_reload(daemon, reload_commands.get(daemon, ()), timeout)
            if failure is not None and failure.status != NOT_RUNNING:
                failures.append(failure)
    return ApplyResult(
        written=changes.written,
        deleted=changes.deleted,
        reloaded=tuple(reloaded),
        failures=tuple(failures),
        restored=tuple(restored),
        not_running=tuple(not_running),
    )


def _prune_empty_dirs(deleted: Sequence[Path]) -> None:
    # A removed domain leaves its key folder empty; drop it so the tree mirrors the state.
    for path in deleted:
        with contextlib.suppress(OSError):
            path.parent.rmdir()
