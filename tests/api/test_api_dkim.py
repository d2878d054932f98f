"""DKIM through HTTP: add, repeat, rotate, show, files rendered whole, errors, reload failures."""

from __future__ import annotations

import stat

import httpx
import pytest
from tests.conftest import LiveServer

from mailctl.domain import dkim
from mailctl.services import dkim as service_dkim


def add_domain(api: httpx.Client, name: str) -> None:
    response = api.post("/domains", data={"domain": name})
    assert response.status_code == 200, response.text


def lines_for(server: LiveServer, table: str, domain: str) -> list[str]:
    text = (server.ctx.settings.opendkim_path / table).read_text()
    return [line for line in text.splitlines() if domain in line]


def test_add_key_answers_the_public_record(api: httpx.Client, server: LiveServer) -> None:
    """The documented curl call creates a key and answers its TXT record, never the private key."""
    add_domain(api, "example.com")
    response = api.post("/dkim/add-new-domain", files={"domain": (None, "example.com")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] is True
    assert (body["domain"], body["selector"], body["key_type"]) == (
        "example.com",
        "mail",
        "rsa2048",
    )
    assert body["dns"]["name"] == "mail._domainkey.example.com"
    assert body["dns"]["type"] == "TXT"
    assert body["dns"]["value"].startswith("v=DKIM1; k=rsa; p=MII")
    p_value = body["dns"]["value"].split("p=", 1)[1]
    assert body["public"].startswith('mail._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k=rsa; "')
    assert body["public"].endswith("; ----- DKIM key mail for example.com\n")
    assert p_value[:250] in body["public"]
    assert "PRIVATE" not in response.text
    assert body["reload"]["ok"] is True
    assert body["reload"]["failures"] == []
    key_file = server.ctx.settings.opendkim_path / "keys/example.com/mail.private"
    assert str(key_file) in body["reload"]["written"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in key_file.read_text()


def test_second_call_returns_the_same_key_and_one_line(
    api: httpx.Client, server: LiveServer
) -> None:
    """Calling add twice returns the same record and leaves one table line for the domain."""
    add_domain(api, "example.com")
    first = api.post("/dkim/add-new-domain", data={"domain": "example.com"}).json()
    second = api.post("/dkim/add-new-domain", data={"domain": "Example.COM"}).json()
    assert second["result"] is True
    assert second["dns"] == first["dns"]
    assert second["public"] == first["public"]
    assert second["reload"]["written"] == []
    assert len(lines_for(server, "KeyTable", "example.com")) == 1
    assert lines_for(server, "SigningTable", "example.com") == [
        "*@example.com mail._domainkey.example.com"
    ]
    trusted = (server.ctx.settings.opendkim_path / "TrustedHosts").read_text().splitlines()
    assert trusted == ["127.0.0.1", "::1", "localhost"]


def test_rotate_makes_a_new_key_under_a_new_selector(api: httpx.Client, server: LiveServer) -> None:
    """rotate=true without selector signs with a new key under a dated selector; the old key
    stays listed, retired, with its record unchanged."""
    add_domain(api, "example.com")
    first = api.post(
        "/dkim/add-new-domain", data={"domain": "example.com", "key_type": "ed25519"}
    ).json()
    before = service_dkim.dated_selector("mail", set())
    response = api.post("/dkim/add-new-domain", data={"domain": "example.com", "rotate": "true"})
    assert response.status_code == 200, response.text
    rotated = response.json()
    new = rotated["selector"]
    assert new in {before, service_dkim.dated_selector("mail", set())}
    assert (rotated["result"], rotated["retired_selector"]) == (True, "mail")
    assert rotated["msg"] == (
        f"The DKIM key of example.com was rotated to the new selector {new}; publish its DNS "
        "record beside the one of the retired key mail, which stays until mail signed with "
        "it has arrived."
    )
    assert rotated["dns"]["name"] == f"{new}._domainkey.example.com"
    assert rotated["dns"]["value"] != first["dns"]["value"]
    key_file = server.ctx.settings.opendkim_path / f"keys/example.com/{new}.private"
    assert rotated["dns"]["value"] == dkim.public_record(key_file.read_text())
    assert lines_for(server, "SigningTable", "example.com") == [
        f"*@example.com {new}._domainkey.example.com"
    ]
    keys = api.get("/dkim/example.com/keys").json()["keys"]
    assert [(k["selector"], k["active"], k["dns"]) for k in keys] == [
        (new, True, rotated["dns"]),
        ("mail", False, first["dns"]),
    ]


def test_rotate_to_the_current_selector_replaces_in_place(
    api: httpx.Client, server: LiveServer
) -> None:
    """Naming the current selector replaces its key; the answer says to update DNS now."""
    add_domain(api, "example.com")
    first = api.post(
        "/dkim/add-new-domain", data={"domain": "example.com", "key_type": "ed25519"}
    ).json()
    rotated = api.post(
        "/dkim/add-new-domain", data={"domain": "example.com", "rotate": "true", "selector": "mail"}
    ).json()
    assert (rotated["selector"], rotated["result"]) == ("mail", True)
    assert "retired_selector" not in rotated
    assert rotated["dns"]["value"] != first["dns"]["value"]
    assert "update its DNS record now" in rotated["msg"]
    assert [k["selector"] for k in api.get("/dkim/example.com/keys").json()["keys"]] == ["mail"]


def test_rotate_to_new_selector_drops_the_old_file(api: httpx.Client, server: LiveServer) -> None:
    """Rotating to another selector signs with the new key only; the old key file goes."""
    add_domain(api, "example.com")
    api.post("/dkim/add-new-domain", data={"domain": "example.com", "key_type": "ed25519"})
    rotated = api.post(
        "/dkim/add-new-domain",
        json={"domain": "example.com", "rotate": True, "selector": "s2025"},
    ).json()
    assert (rotated["selector"], rotated["key_type"]) == ("s2025", "ed25519")
    keys = server.ctx.settings.opendkim_path / "keys/example.com"
    assert sorted(p.name for p in keys.iterdir()) == ["s2025.private"]
    assert lines_for(server, "SigningTable", "example.com") == [
        "*@example.com s2025._domainkey.example.com"
    ]


def test_ed25519_and_selector_choice(api: httpx.Client) -> None:
    """An ed25519 key under a chosen selector gets a k=ed25519 record with the bare key."""
    add_domain(api, "example.org")
    response = api.post(
        "/dkim/add-new-domain",
        data={"domain": "example.org", "selector": "Ed1", "key_type": "ed25519"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["selector"], body["key_type"]) == ("ed1", "ed25519")
    assert body["dns"]["name"] == "ed1._domainkey.example.org"
    assert body["dns"]["value"].startswith("v=DKIM1; k=ed25519; p=")
    assert len(body["dns"]["value"].split("p=", 1)[1]) == 44  # base64 of 32 bytes
    assert "PRIVATE" not in response.text


def test_show_key_by_path_and_field(api: httpx.Client) -> None:
    """GET /dkim/<domain> and GET /dkim?domain= answer the stored public record."""
    add_domain(api, "example.com")
    added = api.post("/dkim/add-new-domain", data={"domain": "example.com"}).json()
    by_path = api.get("/dkim/example.com")
    by_query = api.get("/dkim", params={"domain": "example.com"})
    for response in (by_path, by_query):
        assert response.status_code == 200
        body = response.json()
        assert body["result"] is True
        assert body["dns"] == added["dns"]
        assert body["public"] == added["public"]
        assert "PRIVATE" not in response.text


def test_unknown_domain_is_404(api: httpx.Client) -> None:
    """A key for a domain that does not exist is refused with 404 and a clear message."""
    response = api.post("/dkim/add-new-domain", data={"domain": "nowhere.example"})
    assert response.status_code == 404
    assert response.json() == {"result": False, "msg": "The domain nowhere.example does not exist."}
    assert api.get("/dkim/nowhere.example").status_code == 404


def test_domain_without_key_is_404(api: httpx.Client) -> None:
    """Showing the key of a domain that has none answers 404."""
    add_domain(api, "example.com")
    response = api.get("/dkim/example.com")
    assert response.status_code == 404
    assert response.json() == {"result": False, "msg": "The domain example.com has no DKIM key."}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"selector": "bad_selector"}, "The DKIM selector must be one DNS label"),
        ({"selector": "-x"}, "The DKIM selector must be one DNS label"),
        ({"key_type": "dsa"}, "Unknown DKIM key type 'dsa'"),
        ({"rotate": "maybe"}, "The field 'rotate' must be true or false."),
    ],
)
def test_bad_input_is_400(
    api: httpx.Client, server: LiveServer, fields: dict[str, str], message: str
) -> None:
    """A bad selector, key type or rotate flag is refused with 400 and no key is stored."""
    add_domain(api, "example.com")
    response = api.post("/dkim/add-new-domain", data={"domain": "example.com", **fields})
    assert response.status_code == 400
    assert response.json()["result"] is False
    assert response.json()["msg"].startswith(message)
    assert api.get("/dkim/example.com").status_code == 404


def test_missing_domain_field_is_400(api: httpx.Client) -> None:
    """Without the domain field the call is refused with 400."""
    response = api.post("/dkim/add-new-domain", data={})
    assert response.status_code == 400
    assert response.json() == {"result": False, "msg": "The field 'domain' is required."}


def test_token_is_required(anon: httpx.Client) -> None:
    """Without a token both methods answer 401."""
    assert anon.post("/dkim/add-new-domain", data={"domain": "example.com"}).status_code == 401
    assert anon.get("/dkim/example.com").status_code == 401


def test_deleting_the_domain_removes_its_key_files(api: httpx.Client, server: LiveServer) -> None:
    """After DELETE /domain the key file is gone and the tables no longer name the domain."""
    add_domain(api, "example.com")
    add_domain(api, "example.org")
    api.post("/dkim/add-new-domain", data={"domain": "example.com", "key_type": "ed25519"})
    api.post("/dkim/add-new-domain", data={"domain": "example.org", "key_type": "ed25519"})
    base = server.ctx.settings.opendkim_path
    assert (base / "keys/example.com/mail.private").exists()
    response = api.request("DELETE", "/domain", data={"domain": "example.com"})
    assert response.status_code == 200, response.text
    assert not (base / "keys/example.com").exists()
    assert "example.com" not in (base / "KeyTable").read_text()
    assert "example.com" not in (base / "SigningTable").read_text()
    assert lines_for(server, "KeyTable", "example.org") != []
    assert (base / "keys/example.org/mail.private").exists()


def test_reload_failure_is_reported_and_old_tables_stay(
    api: httpx.Client, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When OpenDKIM's reload fails, the key is stored, the response says so, files stay."""
    add_domain(api, "example.com")
    add_domain(api, "example.org")
    api.post("/dkim/add-new-domain", data={"domain": "example.com", "key_type": "ed25519"})
    base = server.ctx.settings.opendkim_path
    key_table = (base / "KeyTable").read_text()
    monkeypatch.setattr(server.ctx.settings, "reload_enabled", True)
    monkeypatch.setattr(server.ctx.settings, "reload_opendkim", "false")
    # Never the machine's own daemons.
    monkeypatch.setattr(server.ctx.settings, "reload_postfix", "true")
    monkeypatch.setattr(server.ctx.settings, "reload_dovecot", "true")
    response = api.post(
        "/dkim/add-new-domain", data={"domain": "example.org", "key_type": "ed25519"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] is True
    assert "OpenDKIM was not updated" in body["msg"]
    assert body["reload"]["ok"] is False
    assert body["reload"]["failures"] == [{"daemon": "opendkim", "status": "1", "detail": ""}]
    assert (base / "KeyTable").read_text() == key_table
    assert not (base / "keys/example.org/mail.private").exists()
    # The key is stored: it is shown, and the next reconcile with a working reload renders it.
    assert api.get("/dkim/example.org").json()["dns"] == body["dns"]
    monkeypatch.setattr(server.ctx.settings, "reload_opendkim", "true")
    again = api.post("/dkim/add-new-domain", data={"domain": "example.org"}).json()
    assert again["reload"]["reloaded"] == ["opendkim"]
    assert lines_for(server, "KeyTable", "example.org") != []


def test_list_and_remove_retired_key(api: httpx.Client, server: LiveServer) -> None:
    """After a rotation to a new selector, the list shows both; DELETE /dkim drops the old one."""
    add_domain(api, "example.com")
    old = api.post(
        "/dkim/add-new-domain",
        data={"domain": "example.com", "selector": "old", "key_type": "ed25519"},
    ).json()
    new = api.post(
        "/dkim/add-new-domain",
        data={"domain": "example.com", "selector": "new", "rotate": "true"},
    ).json()
    listed = api.get("/dkim/example.com/keys")
    assert listed.status_code == 200
    body = listed.json()
    assert (body["result"], body["domain"]) == (True, "example.com")
    assert [(k["selector"], k["key_type"], k["active"]) for k in body["keys"]] == [
        ("new", "ed25519", True),
        ("old", "ed25519", False),
    ]
    assert [k["dns"] for k in body["keys"]] == [new["dns"], old["dns"]]
    assert "PRIVATE" not in listed.text

    removed = api.request(
        "DELETE", "/dkim", files={"domain": (None, "example.com"), "selector": (None, "old")}
    )
    assert removed.status_code == 200, removed.text
    assert removed.json()["msg"] == "The retired DKIM key old of example.com was removed."
    assert removed.json()["was_active"] is False
    assert [k["selector"] for k in api.get("/dkim/example.com/keys").json()["keys"]] == ["new"]
    assert api.get("/dkim/example.com").json()["dns"] == new["dns"]
    assert len(lines_for(server, "KeyTable", "example.com")) == 1


def test_removing_the_active_key_stops_signing(api: httpx.Client, server: LiveServer) -> None:
    """DELETE /dkim of the signing key says so and empties the domain's table lines."""
    add_domain(api, "example.com")
    api.post("/dkim/add-new-domain", data={"domain": "example.com", "key_type": "ed25519"})
    removed = api.request("DELETE", "/dkim", data={"domain": "example.com", "selector": "mail"})
    assert removed.status_code == 200, removed.text
    body = removed.json()
    assert body["msg"] == (
        "The DKIM key mail of example.com was removed; mail from example.com is no longer signed."
    )
    assert (body["domain"], body["selector"], body["was_active"]) == ("example.com", "mail", True)
    assert body["reload"]["ok"] is True
    assert lines_for(server, "KeyTable", "example.com") == []
    assert lines_for(server, "SigningTable", "example.com") == []
    assert api.get("/dkim/example.com").status_code == 404
    assert api.get("/dkim/example.com/keys").json()["keys"] == []


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"domain": "example.com", "selector": "gone"}, 404, "The domain example.com has no DKIM"),
        ({"domain": "nowhere.example", "selector": "mail"}, 404, "The domain nowhere.example"),
        ({"domain": "example.com", "selector": "../../etc"}, 400, "The DKIM selector must be"),
        ({"domain": "example.com"}, 400, "The field 'selector' is required."),
        ({"selector": "mail"}, 400, "The field 'domain' is required."),
    ],
)
def test_remove_refusals(
    api: httpx.Client, server: LiveServer, fields: dict[str, str], status: int, message: str
) -> None:
    """An unknown domain or selector is 404, a bad or missing field 400; the key stays."""
    add_domain(api, "example.com")
    api.post("/dkim/add-new-domain", data={"domain": "example.com", "key_type": "ed25519"})
    response = api.request("DELETE", "/dkim", data=fields)
    assert response.status_code == status
    assert response.json()["result"] is False
    assert response.json()["msg"].startswith(message)
    assert len(lines_for(server, "KeyTable", "example.com")) == 1
    assert api.get("/dkim/example.com").status_code == 200


def test_list_and_remove_need_a_token(anon: httpx.Client) -> None:
    """Without a token the list and the removal answer 401."""
    assert anon.get("/dkim/example.com/keys").status_code == 401
    response = anon.request("DELETE", "/dkim", data={"domain": "example.com", "selector": "mail"})
    assert response.status_code == 401
