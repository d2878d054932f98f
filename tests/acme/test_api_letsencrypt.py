"""Let's Encrypt over the API against a real pebble, which validates http-01 through mailctl."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.conftest import ADMIN, ADMIN_PASSWORD
from tests.liveserver import live_api
from tests.pki import self_signed
from typer.testing import CliRunner

from mailctl.cli.main import app as cli_app
from mailctl.services import certificates
from mailctl.services.acme_orders import Renewals
from mailctl.services.context import Context
from mailctl.storage.tables import AcmeAccount, AcmeChallenge, Job

# What these tests check does not depend on the database: once, on SQLite (tests/README.md).
ONCE_ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"])

if TYPE_CHECKING:
    # Only for annotations: the fixture hands the object over at run time.
    from conftest import PebbleServer

pytestmark = pytest.mark.acme

HOSTNAME = "mail.example.test"
JOB_WAIT_SECONDS = 60.0


@dataclass
class AcmeApi:
    """The API listening where pebble sends its http-01 requests, and a logged-in client."""

    client: httpx.Client
    ctx: Context


@pytest.fixture
def acme_api(ctx: Context, pebble: PebbleServer) -> Iterator[AcmeApi]:
    """Run the API on 127.0.0.1:<pebble's http-01 port>, configured for pebble."""
    ctx.settings.acme_directory_url = pebble.directory_url
    ctx.settings.acme_ca_bundle = Path(pebble.ca_bundle)
    ctx.settings.acme_timeout_seconds = 30
    with live_api(ctx, pebble.http_port) as base:
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                login = client.post("/auth", data={"username": ADMIN, "password": ADMIN_PASSWORD})
                assert login.status_code == 200, login.text
                client.headers["Auth-token"] = login.json()["token"]
                yield AcmeApi(client, ctx)
        finally:
            # No order may outlive the test's database.
            assert ctx.job_runner.wait(JOB_WAIT_SECONDS)


def _wait_for_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_WAIT_SECONDS
    while True:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()["job"]
        if job["state"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, f"the job did not finish: {job}"
        time.sleep(0.1)


def _order(client: httpx.Client, hostname: str = HOSTNAME) -> dict[str, Any]:
    response = client.post("/ssl/letsencrypt/install", files={"hostname": (None, hostname)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] is True and body["job_id"] in body["msg"]
    return _wait_for_job(client, body["job_id"])


def _account_keys(ctx: Context) -> list[str]:
    with ctx.uow() as uow:
        return [a.key_pem for a in uow.session.query(AcmeAccount).all()]


def test_order_installs_certificate_and_reuses_account(acme_api: AcmeApi) -> None:
    """An order runs as a job, installs a valid chain and key, and the account is reused."""
    client, ctx = acme_api.client, acme_api.ctx
    job = _order(client)
    assert job["state"] == "succeeded", job["message"]
    assert (job["kind"], job["target"]) == ("acme", HOSTNAME)
    assert "installed" in job["message"]
    assert datetime.fromisoformat(job["updated_at"]) >= datetime.fromisoformat(job["created_at"])

    folder = ctx.settings.tls_path / HOSTNAME
    chain = x509.load_pem_x509_certificates((folder / "fullchain.pem").read_bytes())
    leaf = chain[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOSTNAME]
    assert len(chain) >= 2
    assert (folder / "privkey.pem").stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key((folder / "privkey.pem").read_bytes(), None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(serialization.Encoding.DER, spki) == (
        leaf.public_key().public_bytes(serialization.Encoding.DER, spki)
    )

    days = client.post("/ssl/get-left-days", data={"hostname": HOSTNAME}).json()
    expected = math.floor((leaf.not_valid_after_utc - datetime.now(UTC)) / timedelta(days=1))
    assert days["source"] == "stored"
    assert days["days_left"] in (expected, expected - 1)
    assert days["days_left"] > 30
    with ctx.uow() as uow:
        assert uow.session.query(AcmeChallenge).count() == 0  # answers are withdrawn
    accounts = _account_keys(ctx)
    assert len(accounts) == 1

    again = _order(client)
    assert again["state"] == "succeeded", again["message"]
    assert _account_keys(ctx) == accounts
    with ctx.uow() as uow:
        row = uow.certificates.by_name(HOSTNAME)
        assert row is not None and row.source == "acme"
        assert row.previous_chain_pem is not None
        assert x509.load_pem_x509_certificates(row.previous_chain_pem.encode())[0] == leaf
        assert x509.load_pem_x509_certificates(row.chain_pem.encode())[0] != leaf


def test_running_order_blocks_a_second_one(acme_api: AcmeApi) -> None:
    """While an order for a name runs (on any replica), another gets 409 with its job id."""
    client, ctx = acme_api.client, acme_api.ctx
    with ctx.uow() as uow:
        uow.jobs.add("elsewhere-running-job", "acme", HOSTNAME, f"acme:{HOSTNAME}")
        uow.commit()
    response = client.post("/ssl/letsencrypt/install", data={"hostname": HOSTNAME})
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["result"] is False
    assert body["job_id"] == "elsewhere-running-job"
    assert "already running" in body["msg"]
    # Another name is not blocked.
    other = _order(client, "other.example.test")
    assert other["state"] == "succeeded", other["message"]


@ONCE_ON_SQLITE
@pytest.mark.parametrize("hostname", ["", "bad..name", "-x.example.test", "*.example.test"])
def test_bad_hostname_is_400_and_starts_nothing(acme_api: AcmeApi, hostname: str) -> None:
    """A malformed host name is refused at once and leaves no job behind."""
    response = acme_api.client.post("/ssl/letsencrypt/install", data={"hostname": hostname})
    assert response.status_code == 400, response.text
    assert response.json()["result"] is False
    with acme_api.ctx.uow() as uow:
        assert uow.session.query(Job).count() == 0


def _short_lived_pair(name: str, days: int) -> tuple[str, str, datetime]:
    now = datetime.now(UTC)
    not_after = now + timedelta(days=days)
    cert, key = self_signed(name, not_before=now - timedelta(days=80), not_after=not_after)
    return cert.decode(), key.decode(), not_after


def test_renew_due_renews_expiring_acme_certificates(acme_api: AcmeApi) -> None:
    """renew_due orders a new certificate for an ACME one close to expiry, and names it."""
    ctx = acme_api.ctx
    chain, key, not_after = _short_lived_pair(HOSTNAME, days=5)
    with ctx.uow() as uow:
        uow.certificates.put(HOSTNAME, chain, key, not_after, "acme")
        uow.commit()
    assert certificates.renew_due(ctx).renewed == [HOSTNAME]
    [view] = certificates.list_certificates(ctx)
    assert view.days_left > 30
    assert view.source == "acme"
    assert certificates.renew_due(ctx) == Renewals()  # nothing is due any more


@ONCE_ON_SQLITE
def test_cli_issue_runs_the_order_in_the_foreground(
    acme_api: AcmeApi, pebble: PebbleServer, database_url: str
) -> None:
    """`mailctl cert issue` orders and installs; `mailctl cert status` then lists it."""
    settings = acme_api.ctx.settings
    env = {
        "MAILCTL_DATA_DIR": str(settings.data_dir),
        "MAILCTL_DATABASE_URL": database_url,
        "MAILCTL_ACME_DIRECTORY_URL": pebble.directory_url,
        "MAILCTL_ACME_CA_BUNDLE": pebble.ca_bundle,
        "MAILCTL_ACME_TIMEOUT_SECONDS": "30",
    }
    runner = CliRunner()
    issued = runner.invoke(cli_app, ["cert", "issue", HOSTNAME], env=env, catch_exceptions=False)
    assert issued.exit_code == 0, issued.output
    assert f"Certificate for {HOSTNAME} installed" in issued.output
    assert (settings.tls_path / HOSTNAME / "privkey.pem").exists()
    status = runner.invoke(cli_app, ["cert", "status"], env=env, catch_exceptions=False)
    assert status.exit_code == 0, status.output
    assert HOSTNAME in status.output and "acme" in status.output
