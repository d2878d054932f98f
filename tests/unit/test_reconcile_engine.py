"""The reconcile engine: pure render and plan, then apply with writes, reloads and rollback."""

from __future__ import annotations

import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from mailctl.domain import dkim
from mailctl.errors import HostStateError, InvalidInputError
from mailctl.host import daemons, render
from mailctl.host.plan import ActualFile, Plan, plan, read_actual
from mailctl.host.render import DesiredFile, DkimKeyState, TlsState

BASE = Path("/srv/opendkim")  # pure tests never touch it
ED_A = dkim.generate_key("ed25519")
ED_B = dkim.generate_key("ed25519")
OPENDKIM_ONLY = frozenset({"opendkim"})


def keys_ab() -> list[DkimKeyState]:
    return [DkimKeyState("b.example", "s2", ED_B), DkimKeyState("a.example", "s1", ED_A)]


def by_name(files: Sequence[DesiredFile]) -> dict[str, DesiredFile]:
    return {str(f.path.relative_to(f.path.parents[1])): f for f in files}


# --- render ----------------------------------------------------------------------------


def test_opendkim_tables_have_one_sorted_line_per_domain() -> None:
    """KeyTable and SigningTable list each domain once, sorted, in OpenDKIM's formats."""
    files = {f.path: f for f in render.render_opendkim(keys_ab(), BASE)}
    assert files[BASE / "KeyTable"].content == (
        b"s1._domainkey.a.example a.example:s1:/srv/opendkim/keys/a.example/s1.private\n"
        b"s2._domainkey.b.example b.example:s2:/srv/opendkim/keys/b.example/s2.private\n"
    )
    assert files[BASE / "SigningTable"].content == (
        b"*@a.example s1._domainkey.a.example\n*@b.example s2._domainkey.b.example\n"
    )
    assert files[BASE / "TrustedHosts"].content == b"127.0.0.1\n::1\nlocalhost\n"
    key = files[BASE / "keys/a.example/s1.private"]
    assert key.content == ED_A.encode()
    assert key.mode == 0o600
    assert all(f.daemons == OPENDKIM_ONLY for f in files.values())


def test_opendkim_render_is_stable_whatever_the_input_order() -> None:
    """The same keys in another order render the same bytes, so reconcile sees no change."""
    assert render.render_opendkim(keys_ab(), BASE) == render.render_opendkim(
        list(reversed(keys_ab())), BASE
    )


def test_two_keys_for_one_domain_are_refused() -> None:
    """A domain with two active keys is refused rather than signed by whichever comes first."""
    keys = [*keys_ab(), DkimKeyState("a.example", "s9", ED_B)]
    with pytest.raises(InvalidInputError, match=r"a\.example"):
        render.render_opendkim(keys, BASE)


@pytest.mark.parametrize(
    ("domain", "selector"), [("../etc", "s"), ("A.example", "s"), ("a.example", "../x")]
)
def test_unsafe_names_never_become_paths(domain: str, selector: str) -> None:
    """Names that are not canonical domains or selectors are refused before any path is built."""
    with pytest.raises(InvalidInputError):
        render.render_opendkim([DkimKeyState(domain, selector, ED_A)], BASE)


def test_tls_files_and_modes() -> None:
    """A certificate renders a 0644 chain and a 0600 key that both Postfix and Dovecot read."""
    files = render.render_tls([TlsState("mail.example", b"CHAIN", b"KEY")], Path("/tls"))
    assert [(f.path, f.content, f.mode) for f in files] == [
        (Path("/tls/mail.example/fullchain.pem"), b"CHAIN", 0o644),
        (Path("/tls/mail.example/privkey.pem"), b"KEY", 0o600),
    ]
    assert all(f.daemons == {"postfix", "dovecot"} for f in files)


@pytest.mark.parametrize("name", ["..", "a/b", "", "Upper"])
def test_tls_name_must_be_a_plain_folder_name(name: str) -> None:
    """A certificate name that could climb out of the TLS folder is refused."""
    with pytest.raises(InvalidInputError):
        render.render_tls([TlsState(name, b"C", b"K")], Path("/tls"))


# --- plan (pure) -------------------------------------------------------------------------


def as_actual(files: Sequence[DesiredFile]) -> dict[Path, ActualFile]:
    return {f.path: ActualFile(f.content, f.mode) for f in files}


MANAGED = {render.key_dir(BASE): OPENDKIM_ONLY, Path("/tls"): frozenset({"postfix", "dovecot"})}


def test_plan_for_empty_disk_writes_everything() -> None:
    """On an empty host every file is written and OpenDKIM is reloaded."""
    desired = render.render_opendkim(keys_ab(), BASE)
    result = plan(desired, {}, MANAGED)
    assert {f.path for f in result.writes} == {f.path for f in desired}
    assert result.deletes == ()
    assert result.daemons_to_reload == OPENDKIM_ONLY


def test_plan_for_matching_disk_is_empty() -> None:
    """When disk already matches, nothing is written and nobody is reloaded."""
    desired = render.render_opendkim(keys_ab(), BASE)
    result = plan(desired, as_actual(desired), MANAGED)
    assert result == Plan(writes=(), deletes=(), daemons_to_reload=frozenset())
    assert result.empty


def test_plan_rewrites_a_file_with_a_wrong_mode() -> None:
    """A key left world-readable is rewritten even though its bytes are right."""
    desired = render.render_opendkim(keys_ab(), BASE)
    actual = as_actual(desired)
    key_path = BASE / "keys/a.example/s1.private"
    actual[key_path] = ActualFile(ED_A.encode(), 0o644)
    result = plan(desired, actual, MANAGED)
    assert [f.path for f in result.writes] == [key_path]


def test_plan_deletes_a_removed_domains_key() -> None:
    """Removing a domain deletes its key file and rewrites the tables without it."""
    before = render.render_opendkim(keys_ab(), BASE)
    after = render.render_opendkim(keys_ab()[:1], BASE)
    result = plan(after, as_actual(before), MANAGED)
    assert [d.path for d in result.deletes] == [BASE / "keys/a.example/s1.private"]
    assert {f.path.name for f in result.writes} == {"KeyTable", "SigningTable"}
    assert result.daemons_to_reload == OPENDKIM_ONLY


def test_plan_never_deletes_outside_managed_folders() -> None:
    """A hand-written opendkim.conf next to the tables is left alone."""
    desired = render.render_opendkim(keys_ab(), BASE)
    actual = as_actual(desired)
    actual[BASE / "opendkim.conf"] = ActualFile(b"Mode s\n", 0o644)
    assert plan(desired, actual, MANAGED).empty


def test_plan_for_a_new_certificate_reloads_postfix_and_dovecot() -> None:
    """A changed certificate marks both TLS daemons, and OpenDKIM not at all."""
    old = render.render_tls([TlsState("mx", b"OLD", b"K")], Path("/tls"))
    new = render.render_tls([TlsState("mx", b"NEW", b"K")], Path("/tls"))
    result = plan(new, as_actual(old), MANAGED)
    assert [f.path.name for f in result.writes] == ["fullchain.pem"]
    assert result.daemons_to_reload == {"postfix", "dovecot"}


# --- gather and apply on a real folder -------------------------------------------------


def logging_reload(log: Path, name: str, exit_code: int = 0) -> list[str]:
    """A real reload command that records that it ran, and exits with ``exit_code``."""
    code = (
        "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n'); "
        "sys.stderr.write('reload of ' + sys.argv[2] + ' refused: bad config'); "
        "sys.exit(int(sys.argv[3]))"
    )
    return [sys.executable, "-c", code, str(log), name, str(exit_code)]


def reconcile(
    desired: Sequence[DesiredFile],
    managed: Mapping[Path, frozenset[str]],
    commands: Mapping[str, Sequence[str]],
) -> daemons.ApplyResult:
    """Gather, decide and apply, the way the reconcile service strings them together."""
    actual = read_actual(desired, managed)
    return daemons.apply(plan(desired, actual, managed), actual, commands, timeout=10)


def ran(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.fixture
def dkim_base(tmp_path: Path) -> Path:
    return tmp_path / "opendkim"


def test_apply_writes_files_and_reloads_once(tmp_path: Path, dkim_base: Path) -> None:
    """A first reconcile writes the files with their modes and reloads OpenDKIM once."""
    log = tmp_path / "reloads"
    managed = {render.key_dir(dkim_base): OPENDKIM_ONLY}
    result = reconcile(
        render.render_opendkim(keys_ab(), dkim_base),
        managed,
        {"opendkim": logging_reload(log, "opendkim")},
    )
    assert result.ok
    assert result.reloaded == ("opendkim",)
    assert ran(log) == ["opendkim"]
    key = dkim_base / "keys/a.example/s1.private"
    assert key.read_text() == ED_A
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o750
    assert b"b.example" in (dkim_base / "SigningTable").read_bytes()


def test_second_run_changes_nothing(tmp_path: Path, dkim_base: Path) -> None:
    """Running reconcile again with the same state writes nothing and reloads nobody."""
    log = tmp_path / "reloads"
    managed = {render.key_dir(dkim_base): OPENDKIM_ONLY}
    desired = render.render_opendkim(keys_ab(), dkim_base)
    commands = {"opendkim": logging_reload(log, "opendkim")}
    reconcile(desired, managed, commands)
    table_inode = (dkim_base / "KeyTable").stat().st_ino
    second = reconcile(desired, managed, commands)
    assert second == daemons.ApplyResult()
    assert ran(log) == ["opendkim"]
    assert (dkim_base / "KeyTable").stat().st_ino == table_inode


def test_removed_domain_loses_its_key(tmp_path: Path, dkim_base: Path) -> None:
    """Dropping a domain deletes its key and its folder, and reloads OpenDKIM only."""
    log = tmp_path / "reloads"
    managed = {render.key_dir(dkim_base): OPENDKIM_ONLY}
    commands = {
        "opendkim": logging_reload(log, "opendkim"),
        "postfix": logging_reload(log, "postfix"),
    }
    reconcile(render.render_opendkim(keys_ab(), dkim_base), managed, commands)
    result = reconcile(render.render_opendkim(keys_ab()[:1], dkim_base), managed, commands)
    assert result.deleted == (dkim_base / "keys/a.example/s1.private",)
    assert not (dkim_base / "keys/a.example").exists()
    assert b"a.example" not in (dkim_base / "KeyTable").read_bytes()
    assert ran(log) == ["opendkim", "opendkim"]


def test_failed_reload_puts_the_old_files_back(tmp_path: Path, dkim_base: Path) -> None:
    """If OpenDKIM refuses to reload, its files return to the old bytes and the failure is told."""
    log = tmp_path / "reloads"
    managed = {render.key_dir(dkim_base): OPENDKIM_ONLY}
    reconcile(render.render_opendkim(keys_ab()[:1], dkim_base), managed, {})
    old_table = (dkim_base / "KeyTable").read_bytes()

    result = reconcile(
        render.render_opendkim(keys_ab(), dkim_base),
        managed,
        {"opendkim": logging_reload(log, "opendkim", exit_code=3)},
    )
    assert not result.ok
    assert result.failures == (
        daemons.ReloadFailure("opendkim", 3, "reload of opendkim refused: bad config"),
    )
    assert (dkim_base / "KeyTable").read_bytes() == old_table
    assert not (dkim_base / "keys/a.example/s1.private").exists()
    assert dkim_base / "KeyTable" in result.restored


def test_reload_timeout_is_reported(tmp_path: Path) -> None:
    """A reload that hangs is stopped after the timeout and reported as 'timeout'."""
    desired = render.render_tls([TlsState("mx", b"C", b"K")], tmp_path / "tls")
    actual = read_actual(desired, [tmp_path / "tls"])
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    result = daemons.apply(plan(desired, actual, {}), actual, {"postfix": slow}, timeout=0.5)
    assert [(f.daemon, f.status) for f in result.failures] == [("postfix", "timeout")]
    assert not (tmp_path / "tls/mx/privkey.pem").exists()


def test_missing_reload_command_is_reported_not_raised(tmp_path: Path) -> None:
    """A reload binary that does not exist is a reported failure, not a crash."""
    desired = render.render_tls([TlsState("mx", b"C", b"K")], tmp_path / "tls")
    missing = [str(tmp_path / "no-such-binary"), "reload"]
    result = reconcile(desired, {}, {"dovecot": missing})
    assert [(f.daemon, f.status) for f in result.failures] == [("dovecot", "not runnable")]
    assert "no-such-binary" in result.failures[0].stderr_tail


def test_shared_tls_files_rolled_back_for_both_daemons(tmp_path: Path) -> None:
    """When Postfix refuses a new certificate, Dovecot is reloaded again onto the old one."""
    log = tmp_path / "reloads"
    tls_dir = tmp_path / "tls"
    managed = {tls_dir: frozenset({"postfix", "dovecot"})}
    reconcile(render.render_tls([TlsState("mx", b"OLD", b"K")], tls_dir), managed, {})
    result = reconcile(
        render.render_tls([TlsState("mx", b"NEW", b"K")], tls_dir),
        managed,
        {
            "dovecot": logging_reload(log, "dovecot"),
            "postfix": logging_reload(log, "postfix", exit_code=1),
        },
    )
    assert (tls_dir / "mx/fullchain.pem").read_bytes() == b"OLD"
    assert [f.daemon for f in result.failures] == ["postfix"]
    assert ran(log) == ["dovecot", "postfix", "dovecot"]


def test_empty_reload_command_is_a_no_op(tmp_path: Path) -> None:
    """With no reload command configured, files are still written and nothing fails."""
    desired = render.render_tls([TlsState("mx", b"C", b"K")], tmp_path / "tls")
    result = reconcile(desired, {}, {"postfix": [], "dovecot": []})
    assert result.ok
    assert (tmp_path / "tls/mx/fullchain.pem").read_bytes() == b"C"


def test_failed_write_puts_back_earlier_writes(tmp_path: Path) -> None:
    """If one write fails mid-way, files written before it return to their old bytes."""
    tls_dir = tmp_path / "tls"
    reconcile(render.render_tls([TlsState("mx", b"OLD", b"K")], tls_dir), {}, {})
    # A non-empty folder where the key should go makes that one write fail for real.
    desired = render.render_tls([TlsState("mx", b"NEW", b"K2")], tls_dir)
    (tls_dir / "mx/privkey.pem").unlink()
    (tls_dir / "mx/privkey.pem").mkdir()
    (tls_dir / "mx/privkey.pem/x").write_bytes(b"")
    actual = read_actual(desired, [])
    with pytest.raises(HostStateError):
        daemons.apply(plan(desired, actual, {}), actual, {}, timeout=5)
    assert (tls_dir / "mx/fullchain.pem").read_bytes() == b"OLD"


def test_gather_ignores_symlinks_in_managed_folders(tmp_path: Path) -> None:
    """A link planted in a managed folder is neither read nor followed."""
    managed_dir = tmp_path / "keys"
    managed_dir.mkdir()
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    (managed_dir / "link").symlink_to(outside)
    actual = read_actual([], [managed_dir])
    assert actual == {}
    assert outside.read_bytes() == b"precious"
