"""The wire contract: fields arrive as the documented curl commands send them, or any other way."""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import pytest
from tests.conftest import ADMIN, ADMIN_PASSWORD, LiveServer


def test_ping(anon: httpx.Client) -> None:
    """GET /ping answers pong without a token."""
    response = anon.get("/ping")
    assert response.status_code == 200
    assert response.text == "pong"


def test_openapi_page(anon: httpx.Client) -> None:
    """The OpenAPI description lists the documented paths."""
    spec = anon.get("/openapi.json").json()
    for path in (
        "/auth",
        "/domains",
        "/domain",
        "/users/{domain_id}",
        "/user/{domain_id}",
        "/user-change-password",
        "/users",
        "/ping",
    ):
        assert path in spec["paths"]
    assert anon.get("/docs").status_code == 200


@pytest.mark.parametrize("how", ["multipart", "urlencoded", "json", "query"])
def test_fields_arrive_every_way(api: httpx.Client, how: str) -> None:
    """POST /domains reads its fields from multipart, urlencoded, JSON or the query string."""
    fields = {"domain": f"{how}.example", "username": "x", "password": "pw-123456"}
    if how == "multipart":
        response = api.post("/domains", files={k: (None, v) for k, v in fields.items()})
    elif how == "urlencoded":
        response = api.post("/domains", data=fields)
    elif how == "json":
        response = api.post("/domains", json=fields)
    else:
        response = api.post("/domains", params=fields)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["email"] == f"x@{how}.example"


def test_delete_with_multipart_body(api: httpx.Client) -> None:
    """DELETE carries a -F body, as the documented curl does."""
    api.post("/domains", data={"domain": "example.com"})
    response = api.request("DELETE", "/domain", files={"domain": (None, "example.com")})
    assert response.status_code == 200
    assert api.get("/domains").json()["domains"] == []


def test_unknown_path_is_json_404(anon: httpx.Client) -> None:
    """Unknown paths answer the JSON error envelope."""
    response = anon.get("/nope")
    assert response.status_code == 404
    assert response.json()["result"] is False


def test_wrong_method_is_json_405(anon: httpx.Client) -> None:
    """A known path with the wrong method answers 405 in the envelope."""
    response = anon.put("/domains")
    assert response.status_code == 405
    assert response.json()["result"] is False


def test_invalid_json_is_400(api: httpx.Client) -> None:
    """A broken JSON body is a 400, not a 500."""
    response = api.post(
        "/domains", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["msg"]


def test_json_array_is_400(api: httpx.Client) -> None:
    """A JSON body must be an object of fields."""
    response = api.post("/domains", json=["example.com"])
    assert response.status_code == 400


def test_oversized_body_is_413(api: httpx.Client) -> None:
    """A body over the limit is refused with 413."""
    response = api.post("/domains", data={"domain": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413
    assert response.json()["result"] is False


def test_documented_curl_commands(server: LiveServer) -> None:
    """The curl commands of the API documentation work as written, -F on GET and DELETE too."""
    curl = shutil.which("curl")
    assert curl, "curl is required for this test"

    def run(*args: str) -> dict[str, object]:
        out = subprocess.run(
            [curl, "-s", *args], capture_output=True, text=True, timeout=60, check=True
        )
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    url = server.url
    token = run(
        "-X", "POST", "-F", f"username={ADMIN}", "-F", f"password={ADMIN_PASSWORD}", f"{url}/auth"
    )["token"]
    head = ["-H", f"Auth-token: {token}", "-H", "Cache-Control: no-cache"]
    created = run(
        "-X",
        "POST",
        *head,
        "-F",
        "domain=alsoanotherexample.com",
        "-F",
        "username=USERNAME",
        "-F",
        "password=PASSWORD-1",
        f"{url}/domains",
    )
    assert created["result"] is True
    domains = run("-X", "GET", *head, f"{url}/domains")["domains"]
    assert isinstance(domains, list)
    domain_id = domains[0]["id"]
    assert domains[0]["users_count"] == 1
    user = run(
        "-X",
        "POST",
        *head,
        "-F",
        "email=someemail@alsoanotherexample.com",
        "-F",
        "password=UNENCRYPTED_PASS",
        f"{url}/user/{domain_id}",
    )
    assert user["result"] is True
    users = run("-X", "GET", *head, f"{url}/users/{domain_id}")["users"]
    assert {u["email"] for u in users} == {
        "username@alsoanotherexample.com",
        "someemail@alsoanotherexample.com",
    }
    user_id = user["user"]["id"]  # type: ignore[index]
    changed = run(
        "-X",
        "POST",
        *head,
        "-F",
        f"id={user_id}",
        "-F",
        "password=NEW_UNENCRYPTED_PASS",
        "-F",
        f"domain_id={domain_id}",
        f"{url}/user-change-password",
    )
    assert changed["result"] is True
    deleted = run(
        "-X", "DELETE", *head, "-F", "email=someemail@alsoanotherexample.com", f"{url}/users"
    )
    assert deleted["result"] is True
    gone = run("-X", "DELETE", *head, "-F", "domain=alsoanotherexample.com", f"{url}/domain")
    assert gone["result"] is True
    assert run("-X", "GET", *head, f"{url}/domains")["domains"] == []
