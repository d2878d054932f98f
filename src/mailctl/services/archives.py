"""Export a domain as a streamed archive, and import one back: rows, hashes, keys and mail."""

from mailctl.services.archive_export import (
    DomainExport,
    ExportedFile,
    export_to_file,
    prepare_export,
)
from mailctl.services.archive_import import (
    ImportResult,
    Readable,
    UploadSpool,
    import_domain,
    receive_upload,
)

__all__ = [
    "DomainExport",
    "ExportedFile",
    "ImportResult",
    "Readable",
    "UploadSpool",
    "export_to_file",
    "import_domain",
    "prepare_export",
    "receive_upload",
]
