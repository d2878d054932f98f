"""Domain archives: export a domain as a streamed .tar.gz and import one safely."""

from mailctl.archive.format import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    AliasEntry,
    DkimKeyEntry,
    FileEntry,
    MailboxEntry,
    Manifest,
    maildir_path,
)
from mailctl.archive.reader import verify_and_extract
from mailctl.archive.stream import ExportResult, export_stream

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "AliasEntry",
    "DkimKeyEntry",
    "ExportResult",
    "FileEntry",
    "MailboxEntry",
    "Manifest",
    "export_stream",
    "maildir_path",
    "verify_and_extract",
]
