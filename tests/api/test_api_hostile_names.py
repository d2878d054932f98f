"""Hostile names through the real HTTP API: 4xx or a canonical 200, never a 500, no stray file."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from tests.api.hostile_names import HOSTILE_NAMES, SAMPLE
from tests.conftest import LiveServer
from tests.pki import ca_signed

from mailctl.domain.names import normalize_domain, parse_address
from mailctl.domain.passwords import hash_password

DOMAIN = "corpus.example"
_LDH_NAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")
_LOCAL = re.compile(r"^[a-z0-9!#$&'*+=?^_`{|}~-]+(\.[a-z0-9!#$&'*+=?^_`{|}~-]+)*$")
# Places outside the data folder that anything on this machine could write to, and that
# are cheap to list: a file named after a hostile name appearing there would be ours.
_SHARED_PLACES = [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path.home()]
_SKIPPED_IN_REPO = {".git", ".venv", ".test-results", ".test-databases", "__pycache__"}
_SKIPPED_IN_REPO |= {".pytest_cache", ".mypy_cache", ".ruff_cache"}
# Written meanwhile by the tests of other parallel workers: hypothesis's cache (the
# schemathesis test) and the small disks the full-disk tests mount.
_SKIPPED_IN_REPO |= {".hypothesis", ".test-mounts"}


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


@pytest.fixture
def offline_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve only addresses and localhost: no hostile name ever reaches a real DNS server."""
    real = socket.getaddrinfo

    def resolve(host: object, *args: object, **kwargs: object) -> object:
        text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        if text is None or text == "localhost" or (isinstance(text, str) and _is_address(text)):
            return real(host, *args, **kwargs)  # type: ignore[arg-type]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def _tree(root: Path, skip: Callable[[Path], bool]) -> dict[str, tuple[int, int]]:
    """Every path below ``root`` with its kind and size (files) — not following links."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [name for name in dirnames if not skip(here / name)]
        for name in dirnames + filenames:
            path = here / name
            if skip(path):
                continue
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            size = info.st_size if not path.is_dir() else 0
            found[str(path)] = (info.st_mode & 0o170000, size)
    return found


def _listing(place: Path) -> set[str]:
    try:
        return set(os.listdir(place))
    except OSError:
        return set()


class Snapshot:
    """What exists outside the data folder: the test's tree, the repository, shared places."""

    def __init__(self, tmp_path: Path, data: Path, database: Path | None) -> None:
        self.tmp_path, self.data = tmp_path, data
        # The test's SQLite database may sit beside the data folder; it changes, of course.
        self.database = {str(database) + end for end in ("", "-wal", "-shm", "-journal")}
        self.repo = Path.cwd()
        self.trees = self._trees()
        self.shared = {place: _listing(place) for place in self._places()}

    def _places(self) -> list[Path]:
        return [*_SHARED_PLACES, self.tmp_path.parent, self.data.parent]

    def _trees(self) -> dict[str, tuple[int, int]]:
        tmp = _tree(self.tmp_path, lambda p: p == self.data or str(p) in self.database)
        repo = _tree(self.repo, lambda p: p.name in _SKIPPED_IN_REPO or p == self.tmp_path)
        return {**tmp, **repo}

    def outside_changes(self, names: list[str]) -> list[str]:
        """Paths outside the data folder that appeared, went or changed since the snapshot."""
        now = self._trees()
        changed = sorted(
            path for path in set(now) | set(self.trees) if now.get(path) != self.trees.get(path)
        )
        # Shared places also change under other programs: only a new entry named after
        # something we sent counts.
        fragments = {part for name in names for part in re.split(r"[/\\]", name) if part}
        for place, before in self.shared.items():
            for entry in _listing(place) - before:
                if entry in fragments or any(len(f) >= 4 and f in entry for f in fragments):
                    changed.append(str(place / entry))
        return changed


def _data_escapes(data: Path) -> list[str]:
    """Entries of the data folder that resolve outside it (links, or worse)."""
    root = data.resolve()
    escapes = []
    for dirpath, dirnames, filenames in os.walk(data):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if not path.resolve().is_relative_to(root):
                escapes.append(str(path))
    return escapes


def _json(fields: dict[str, str]) -> dict[str, object]:
    # ensure_ascii escapes everything (NUL, lone surrogates) so any str can be sent.
    return {
        "content": json.dumps(fields, ensure_ascii=True).encode("ascii"),
        "headers": {"Content-Type": "application/json"},
    }


def _multipart_file(filename: str, data: bytes) -> dict[str, object]:
    # Built by hand so the file name's bytes go on the wire as they are (CR, LF, quotes).
    raw_name = filename.encode("utf-8", "surrogatepass")
    body = (
        b'--corpusboundary\r\nContent-Disposition: form-data; name="archive"; filename="'
        + raw_name
        + b'"\r\nContent-Type: application/gzip\r\n\r\n'
        + data
        + b"\r\n--corpusboundary--\r\n"
    )
    return {
        "content": body,
        "headers": {"Content-Type": "multipart/form-data; boundary=corpusboundary"},
    }


def _path(name: str) -> str:
    return quote(name, safe="", errors="surrogatepass")


class Corpus:
    """Sends the requests, checks each answer, and keeps the figures."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self.statuses: Counter[int] = Counter()
        self.problems: list[str] = []
        self.seconds: Counter[str] = Counter()

    def send(self, what: str, name: str, method: str, path: str, **kwargs: object) -> dict:  # type: ignore[type-arg]
        started = time.perf_counter()
        response = self.api.request(method, path, **kwargs)  # type: ignore[arg-type]
        self.seconds[what] += time.perf_counter() - started
        status = response.status_code
        self.statuses[status] += 1
        where = f"{what} {name!r:.120}: {status}"
        if status >= 500:
            self.problems.append(f"{where} {response.text[:200]}")
            return {}
        if not response.headers.get("content-type", "").startswith("application/json"):
            if status == 200 and what == "export":
                return {}
            self.problems.append(f"{where} answered {response.headers.get('content-type')}")
            return {}
        body = response.json()
        if status >= 400:
            if body.get("result") is not False or not str(body.get("msg", "")).strip():
                self.problems.append(f"{where} without a message: {response.text[:200]}")
            return {}
        if status != 200 or body.get("result") is not True:
            self.problems.append(f"{where} {response.text[:200]}")
            return {}
        return dict(body)

    def canonical_domain(self, name: str, stored: str) -> None:
        if not (_LDH_NAME.match(stored) and normalize_domain(stored) == stored):
            self.problems.append(f"domain {name!r} stored as non-canonical {stored!r}")
        elif normalize_domain(name) != stored:
            self.problems.append(f"domain {name!r} stored as {stored!r}")

    def canonical_email(self, name: str, stored: str) -> None:
        local, _, domain = stored.partition("@")
        if domain != DOMAIN or not _LOCAL.match(local) or len(local) > 64:
            self.problems.append(f"address {name!r} stored as non-canonical {stored!r}")
        elif parse_address(name, default_domain=DOMAIN).email != stored:
            self.problems.append(f"address {name!r} stored as {stored!r}")


def _names(backend: str) -> list[str]:
    return HOSTILE_NAMES if backend == "sqlite" else SAMPLE


@pytest.mark.slow
@pytest.mark.usefixtures("offline_dns")
@pytest.mark.security(
    finding=9,
    claim="Hundreds of hostile names, addresses, selectors and host names sent to every "
    "naming API method get a 4xx JSON answer or a 200 storing the canonical name, never a "
    "500, and no file appears outside the data folder.",
)
def test_hostile_names_fail_closed_and_write_nothing_outside(
    api: httpx.Client,
    server: LiveServer,
    backend: str,
    tmp_path: Path,
    figure: Callable[[str, object], None],
) -> None:
    """Each name as a domain, mailbox, alias, DKIM domain and selector, certificate name,
    days-left host, path segment and upload file name: 4xx JSON or a canonical 200."""
    settings = server.ctx.settings
    names = _names(backend)
    created = api.post("/domains", data={"domain": DOMAIN})
    assert created.status_code == 200, created.text
    domain_id = created.json()["domain"]["id"]
    # Mailboxes get a hash made once: the corpus tests names, not the password hasher.
    hashed = hash_password("corpus-password-1", "SHA512-CRYPT")
    chain, key, _ = ca_signed("cert.corpus.example")
    archive = api.get("/export/domain", params={"domain": DOMAIN}).content
    assert archive[:2] == b"\x1f\x8b"
    data = settings.data_dir
    url = settings.database_url
    database = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    snapshot = Snapshot(tmp_path, data, database)
    corpus = Corpus(api)
    accepted: Counter[str] = Counter()

    for name in names:
        body = corpus.send("domain", name, "POST", "/domains", **_json({"domain": name}))
        if body:
            accepted["domain"] += 1
            corpus.canonical_domain(name, body["domain"]["name"])
        try:
            form = {"domain": (None, name.encode("utf-8"))}
        except UnicodeEncodeError:
            pass  # a lone surrogate cannot be UTF-8; it went as JSON above
        else:
            body = corpus.send("domain (multipart)", name, "POST", "/domains", files=form)
            if body:
                corpus.canonical_domain(name, body["domain"]["name"])
        for email in (name, f"{name}@{DOMAIN}"):
            fields = {"email": email, "password_hash": hashed}
            body = corpus.send("mailbox", email, "POST", f"/user/{domain_id}", **_json(fields))
            if body:
                accepted["mailbox"] += 1
                corpus.canonical_email(email, body["user"]["email"])
        alias = {"source": name, "destination": f"postmaster@{DOMAIN}"}
        body = corpus.send("alias source", name, "POST", f"/alias/{domain_id}", **_json(alias))
        accepted["alias"] += bool(body)
        alias = {"source": f"info@{DOMAIN}", "destination": name}
        body = corpus.send("alias destination", name, "POST", f"/alias/{domain_id}", **_json(alias))
        accepted["alias"] += bool(body)
        dkim = {"domain": DOMAIN, "selector": name, "key_type": "ed25519"}
        body = corpus.send("dkim selector", name, "POST", "/dkim/add-new-domain", **_json(dkim))
        if body:
            accepted["dkim selector"] += 1
            if not _LDH_NAME.match(f"{body['selector']}.x"):
                corpus.problems.append(f"selector {name!r} stored as {body['selector']!r}")
        upload = {"ssl_certificate": chain.decode(), "ssl_certificate_key": key.decode()}
        upload["name"] = name
        body = corpus.send("certificate name", name, "POST", "/ssl/upload", **_json(upload))
        accepted["certificate"] += bool(body)
        days = {"hostname": name, "port": "443"}
        corpus.send("days-left host", name, "POST", "/ssl/get-left-days", **_json(days))
        upload_name = _multipart_file(name, b"not an archive")
        corpus.send("import file name", name, "POST", "/import/domain", **upload_name)
    # The other methods that take a name, for a sample of the corpus.
    for name in SAMPLE:
        corpus.send("dkim domain", name, "POST", "/dkim/add-new-domain", **_json({"domain": name}))
        fields = {"domain": DOMAIN, "selector": name}
        corpus.send("dkim delete", name, "DELETE", "/dkim", **_json(fields))
        fields = {"domain": name, "format": "json"}
        corpus.send("export", name, "GET", "/export/domain", **_json(fields))
        corpus.send("mailbox delete", name, "DELETE", "/users", **_json({"email": name}))
        corpus.send("alias delete", name, "DELETE", "/aliases", **_json({"source": name}))
        corpus.send("domain delete", name, "DELETE", "/domain", **_json({"domain": name}))
        if name:  # an empty segment is another route's trailing-slash redirect
            corpus.send("dkim keys path", name, "GET", f"/dkim/{_path(name)}/keys")
            corpus.send("users path", name, "GET", f"/users/{_path(name)}")
            corpus.send("jobs path", name, "GET", f"/jobs/{_path(name)}")
    for name in names[:5]:
        replace = _multipart_file(name, archive)
        url = "/import/domain?replace=true"
        body = corpus.send("import (real archive)", name, "POST", url, **replace)
        accepted["import"] += bool(body)

    outside = snapshot.outside_changes(names)
    escapes = _data_escapes(data)
    requests = sum(corpus.statuses.values())
    fours = sum(n for status, n in corpus.statuses.items() if 400 <= status < 500)
    fives = sum(n for status, n in corpus.statuses.items() if status >= 500)
    figure("hostile names sent", len(names))
    figure("requests", requests)
    figure("4xx answers", fours)
    figure("200 answers", corpus.statuses[200])
    figure("5xx answers", fives)
    figure("files outside the data folder", len(outside) + len(escapes))
    figure("accepted (canonical)", dict(accepted))
    figure("seconds spent in requests", round(sum(corpus.seconds.values()), 1))
    assert corpus.problems == []
    assert (outside, escapes) == ([], [])
    assert fives == 0
    assert len(names) >= (200 if backend == "sqlite" else 25)
    assert fours + corpus.statuses[200] == requests


def test_the_corpus_is_large_and_varied() -> None:
    """At least 200 distinct hostile names, with NUL, lone surrogates, RTL marks and more."""
    assert len(HOSTILE_NAMES) >= 200
    assert len(set(HOSTILE_NAMES)) == len(HOSTILE_NAMES)
    joined = "".join(HOSTILE_NAMES)
    for needle in ("\x00", "\ud800", "\u202e", "..", "%2e", "$(", "' OR", "CON", "xn--", "\u0435"):
        assert needle in joined, needle
