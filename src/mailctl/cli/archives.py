"""``mailctl export DOMAIN`` and ``mailctl import FILE``, on this host or a remote mailctl."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from mailctl.cli import remote
from mailctl.cli.common import (
    REMOTE_PASSWORD,
    REMOTE_TOKEN,
    REMOTE_URL,
    REMOTE_USERNAME,
    actor,
    console,
    context,
    remote_client,
    reports_errors,
)
from mailctl.errors import InvalidInputError
from mailctl.services import archives, leftovers


@contextmanager
def _progress() -> Iterator[Progress]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[files]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        yield progress


class _Counting:
    """A file read through for the importer, telling the progress bar how far it got."""

    def __init__(self, handle: BinaryIO, progress: Progress, task: TaskID) -> None:
        self._handle = handle
        self._progress = progress
        self._task = task
        self._done = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._handle.read(size)
        self._done += len(data)
        self._progress.update(self._task, completed=self._done)
        return data

    def seekable(self) -> bool:
        return self._handle.seekable()

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = 0, /) -> int:
        # The importer reads an archive whose manifest comes last twice: check, then unpack.
        position = self._handle.seek(offset, whence)
        self._done = position
        self._progress.update(self._task, completed=position)
        return position


@reports_errors
def export_command(
    domain: str = typer.Argument(..., help="The domain to export."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Archive file, or directory (default: here)."
    ),
    url: str | None = REMOTE_URL,
    token: str | None = REMOTE_TOKEN,
    username: str | None = REMOTE_USERNAME,
    password: str | None = REMOTE_PASSWORD,
) -> None:
    """Export a domain (mailboxes, password hashes, aliases, DKIM keys, mail) as a .tar.gz."""
    target = output if output is not None else Path.cwd()
    if url:
        with remote_client(url, token, username, password) as client, _progress() as progress:
            task = progress.add_task(f"Downloading {domain}", total=None, files="")
            path, size = remote.download_export(
                client, domain, target, lambda done: progress.update(task, completed=done)
            )
        console.print(f"Exported {domain} to {path} ({size} bytes).", highlight=False)
        return
    with context() as ctx, _progress() as progress:
        task = progress.add_task(f"Exporting {domain}", total=None, files="")

        def report(done: int, files: int) -> None:
            progress.update(task, completed=done, files=f"{files} files")

        written = archives.export_to_file(ctx, actor(), domain, target, report)
    console.print(
        f"Exported {written.domain} to {written.path} ({written.size} bytes, "
        f"sha256 {written.sha256}).",
        highlight=False,
    )
    console.print("The archive holds password hashes and DKIM private keys: keep it safe.")


@reports_errors
def import_command(
    archive: Path = typer.Argument(..., help="The .tar.gz made by mailctl export."),
    replace: bool = typer.Option(
        False, "--replace", help="Move an existing domain of that name to the trash first."
    ),
    url: str | None = REMOTE_URL,
    token: str | None = REMOTE_TOKEN,
    username: str | None = REMOTE_USERNAME,
    password: str | None = REMOTE_PASSWORD,
) -> None:
    """Import a domain archive; every checksum is verified before anything changes."""
    try:
        total = archive.stat().st_size
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {archive}: {exc.strerror}.") from exc
    if url:
        with remote_client(url, token, username, password) as client, _progress() as progress:
            task = progress.add_task(f"Uploading {archive.name}", total=total, files="")
            answer = remote.upload_import(
                client, archive, replace, lambda done: progress.update(task, completed=done)
            )
        console.print(
            f"Imported {answer['domain']}: {answer['mailboxes']} mailboxes, "
            f"{answer['files']} files.",
            highlight=False,
        )
        return
    with context() as ctx, _progress() as progress, archive.open("rb") as handle:
        # A maildir an earlier import left without its row would refuse this one.
        leftovers.clean_up(ctx)
        task = progress.add_task(f"Importing {archive.name}", total=total, files="")
        result = archives.import_domain(ctx, actor(), _Counting(handle, progress, task), replace)
    console.print(
        f"Imported {result.domain}: {result.mailboxes} mailboxes, {result.aliases} aliases, "
        f"{result.dkim_keys} DKIM keys, {result.files} files.",
        highlight=False,
    )
    if result.replaced:
        console.print("The domain it replaced is in the trash (mailctl trash list).")
