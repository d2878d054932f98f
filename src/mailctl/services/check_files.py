"""`mailctl check` on files: what reconcile and setup render, and OpenDKIM's keys."""

from __future__ import annotations

import grp
from collections.abc import Sequence

from mailctl.host import health
from mailctl.host.render import DesiredFile
from mailctl.host.stack import RenderedFile, StackConfig
from mailctl.services.check_report import FAIL, OK, Verdicts

RECONCILE_FIX = "Run `mailctl reconcile` to render the files from the database."


def rendered_files(
    verdicts: Verdicts, desired: Sequence[DesiredFile], name: str, what: str
) -> None:
    """The files reconcile renders (tables, keys, certificates) are what the database says."""
    found = (health.drift(f.path, f.content, f.mode, f.uid, f.gid) for f in desired)
    stale = [problem for problem in found if problem is not None]
    if stale:
        verdicts.add(name, FAIL, "; ".join(stale[:5]) + ".", RECONCILE_FIX)
    else:
        verdicts.add(name, OK, f"{len(desired)} {what} files match the database.")


def config_files(verdicts: Verdicts, files: Sequence[RenderedFile]) -> None:
    """The daemons' configuration files are what setup would write now."""
    stale = []
    for file in files:
        gid = _gid(file.group)
        problem = health.drift(file.path, file.content.encode(), file.mode, None, gid)
        if problem is not None:
            stale.append(problem)
    if stale:
        verdicts.add(
            "config.files",
            FAIL,
            "; ".join(stale[:5]) + ".",
            "Run `mailctl setup --apply` with the options of this host (they differ "
            "from what it would write now).",
        )
    else:
        verdicts.add("config.files", OK, f"{len(files)} daemon configuration files are current.")


def dkim_keys(verdicts: Verdicts, cfg: StackConfig, desired: Sequence[DesiredFile]) -> None:
    """OpenDKIM can read each key, and its RequireSafeKeys accepts it."""
    keys = [file for file in desired if file.path.suffix == ".private"]
    user = cfg.opendkim_user
    if not keys:
        verdicts.add("opendkim.keys", OK, "There is no DKIM key to sign with yet.")
        return
    if not health.user_exists(user):
        verdicts.missing("opendkim.keys", f"There is no {user} user.", "apt-get install opendkim")
        return
    for file in keys:
        domain = file.path.parent.name
        name = f"opendkim.key.{domain}"
        if not file.path.is_file():
            continue  # the rendered-files check names it already
        if not health.readable_by(file.path, user):
            verdicts.add(
                name,
                FAIL,
                f"OpenDKIM, running as {user}, cannot read {file.path}.",
                f"Set MAILCTL_FILE_UID and MAILCTL_FILE_GID to the ids of {user} "
                "(`id opendkim`), then run `mailctl reconcile`.",
            )
            continue
        reason = health.unsafe_key_reason(file.path, user)
        if reason is None:
            verdicts.add(name, OK, f"{file.path} is readable by {user} only, and safe.")
        elif cfg.opendkim_require_safe_keys:
            verdicts.add(
                name,
                FAIL,
                f"OpenDKIM refuses {file.path} (RequireSafeKeys): {reason}. It answers "
                f"every message from {domain} with a temporary failure (451).",
                "Keep the keys below folders only root or opendkim may write to: set "
                "MAILCTL_OPENDKIM_DIR to such a folder (e.g. /etc/opendkim), run "
                "`mailctl setup --apply`, or fix the mode of the folder named.",
            )
        else:
            verdicts.add(
                name,
                OK,
                f"{file.path} is readable by {user}; RequireSafeKeys is off, "
                f"which would otherwise refuse it: {reason}.",
            )


def _gid(group: str | None) -> int | None:
    # A group the host lacks is the daemons' check to report; the content still counts.
    if group is None:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None
