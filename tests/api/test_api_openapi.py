"""/openapi.json tells the truth: each status with its body, each path's methods, no redirects."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import sys
import typing
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from mailctl.api.app import ROUTERS
from mailctl.api.deps import current_actor, get_fields, parsed
from mailctl.api.fields import field_specs
from mailctl.api.paging import ListPage
from mailctl.errors import MailctlError

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method.upper(), operation


def _calls(route: APIRoute) -> set[Callable[..., Any]]:
    """Every dependency function a route runs, however deep."""
    found: set[Callable[..., Any]] = set()
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if dependant.call is not None:
            found.add(dependant.call)
        pending.extend(dependant.dependencies)
    return found


def _raised_in_route(endpoint: Callable[..., Any]) -> set[str]:
    """Statuses of the MailctlErrors the route's own module raises on its way.

    Follows calls to functions of the same module (the route's helpers) and reads their
    ``raise SomeError(...)`` statements; what services raise is not traced here.
    """
    module = sys.modules[endpoint.__module__]
    tree = ast.parse(inspect.getsource(module))
    functions = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    statuses: set[str] = set()
    seen: set[str] = set()
    pending = [endpoint.__name__]
    while pending:
        name = pending.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in ast.walk(functions[name]):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                pending.append(node.func.id)
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                error = getattr(module, getattr(node.exc.func, "id", ""), None)
                if isinstance(error, type) and issubclass(error, MailctlError):
                    statuses.add(str(error.status_code))
            is_status = isinstance(node, ast.keyword) and node.arg == "status_code"
            if is_status and isinstance(node.value, ast.Constant):
                statuses.add(str(node.value.value))
    return statuses


def _routes() -> list[APIRoute]:
    return [r for m in ROUTERS for r in m.router.routes if isinstance(r, APIRoute)]


@pytest.mark.security(
    finding=11,
    claim="/openapi.json lists every status each operation answers, each with its JSON body "
    "(the error envelope for errors), and every route the server routes.",
)
def test_every_operation_documents_its_statuses(
    anon: httpx.Client, figure: Callable[[str, object], None]
) -> None:
    """Each operation: a success body, JSON envelopes for errors, the statuses its
    dependencies can raise (401 for a token, 400 and 413 for fields, 500 and 507 everywhere) and
    those its route module raises or answers itself."""
    spec = anon.get("/openapi.json").json()
    documented = {(path, method): op for path, method, op in _operations(spec)}
    routes = {(r.path, m): r for r in _routes() for m in r.methods or ()}
    assert set(routes) == set(documented), "every route, and nothing else, is documented"

    problems: list[str] = []
    statuses = 0
    for (path, method), operation in sorted(documented.items()):
        where = f"{method} {path}"
        responses = operation["responses"]
        statuses += len(responses)
        expected = {"200", "500", "507"}
        route = routes[(path, method)]
        calls = _calls(route)
        expected |= _raised_in_route(route.endpoint)
        if current_actor in calls:
            expected |= {"401"}
            if not operation.get("security"):
                problems.append(f"{where}: needs a token but declares no security")
        if get_fields in calls:
            expected |= {"400", "413"}
        if missing := expected - set(responses):
            problems.append(f"{where}: missing {sorted(missing)}")
        if "422" in responses:
            problems.append(f"{where}: documents 422, which this API never sends")
        ok_content = responses["200"].get("content", {})
        if not ok_content or any(not body.get("schema") for body in ok_content.values()):
            problems.append(f"{where}: 200 without a body schema")
        for status, response in responses.items():
            if status[0] not in "45":
                continue
            content = response.get("content", {})
            if list(content) != ["application/json"]:
                problems.append(f"{where} {status}: errors are JSON, documented {list(content)}")
                continue
            body = _resolve(spec, content["application/json"]["schema"])
            if body.get("properties", {}).get("result", {}).get("const") is not False:
                problems.append(f"{where} {status}: not the error envelope")
            if "msg" not in body.get("required", []):
                problems.append(f"{where} {status}: the envelope must carry msg")
    figure("operations", len(documented))
    figure("documented statuses", statuses)
    assert not problems, "\n".join(problems)


@pytest.mark.security(
    finding=11,
    claim="A method a path does not take answers 405 in the JSON envelope, with an Allow "
    "header naming exactly the methods that path accepts.",
)
def test_405_allow_lists_every_method_of_the_path(
    anon: httpx.Client, figure: Callable[[str, object], None]
) -> None:
    """PATCH (used nowhere) on every documented path: 405, JSON, Allow = documented methods."""
    spec = anon.get("/openapi.json").json()
    templates = {
        re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"): {
            m.upper() for m in item if m in HTTP_METHODS
        }
        for path, item in spec["paths"].items()
    }
    wrong: list[str] = []
    for path in spec["paths"]:
        concrete = path.replace("{domain_id}", "1").replace("{domain}", "example.com")
        concrete = concrete.replace("{job_id}", "x").replace("{token}", "x")
        # /dkim/add-new-domain is also /dkim/{domain}: a path takes the methods of both.
        methods = set().union(*(m for regex, m in templates.items() if regex.match(concrete)))
        response = anon.patch(concrete)
        allow = {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}
        if response.status_code != 405 or response.json()["result"] is not False:
            wrong.append(f"PATCH {concrete}: {response.status_code}")
        elif allow != methods:
            wrong.append(f"{concrete}: Allow {sorted(allow)}, documented {sorted(methods)}")
    figure("paths checked", len(spec["paths"]))
    figure("wrong Allow headers", len(wrong))
    assert not wrong, "\n".join(wrong)


@pytest.mark.security(
    finding=11,
    claim="A path with a trailing slash answers like the path without it, in JSON, instead "
    "of an empty 307 that curl does not follow.",
)
def test_trailing_slash_answers_without_a_redirect(
    api: httpx.Client, anon: httpx.Client, figure: Callable[[str, object], None]
) -> None:
    """GET, POST and DELETE with a trailing slash work as documented; no redirect is sent."""
    created = api.post("/domains/", files={"domain": (None, "slash.example")})
    assert created.status_code == 200, created.text
    listed = api.get("/domains/")
    assert listed.status_code == 200
    assert [d["name"] for d in listed.json()["domains"]] == ["slash.example"]
    domain_id = listed.json()["domains"][0]["id"]
    assert api.get(f"/users/{domain_id}/").json() == api.get(f"/users/{domain_id}").json()
    gone = api.request("DELETE", "/domain/", files={"domain": (None, "slash.example")})
    assert gone.status_code == 200, gone.text
    redirects = 0
    for response in (anon.get("/ping/"), anon.get("/nope/"), anon.get("/domains/")):
        redirects += response.is_redirect
    assert anon.get("/ping/").text == "pong"
    nope = anon.get("/nope/")
    assert nope.status_code == 404
    assert nope.json()["result"] is False
    assert anon.get("/domains/").status_code == 401
    figure("redirects sent", redirects)
    assert redirects == 0


def _field_models(route: APIRoute) -> list[type[Any]]:
    """The field models its endpoint takes: dataclasses of the route's own module, or the
    paging fields every listing shares."""
    hints = typing.get_type_hints(route.endpoint, include_extras=True)
    found = [typing.get_args(hint)[0] for hint in hints.values() if typing.get_args(hint)]
    homes = {route.endpoint.__module__, ListPage.__module__}
    return [
        model for model in found if dataclasses.is_dataclass(model) and model.__module__ in homes
    ]


def _documented_fields(operation: dict[str, Any]) -> dict[str, set[str]]:
    """Per place (each body media type, the query string): the field names documented."""
    places: dict[str, set[str]] = {}
    for media, body in operation.get("requestBody", {}).get("content", {}).items():
        places[media] = set(body["schema"].get("properties", {}))
    query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    if query:
        places["query"] = query
    return places


def test_each_operation_documents_the_fields_its_model_parses(anon: httpx.Client) -> None:
    """Every route that reads fields reads them through one model, and the document lists
    exactly that model's fields (the archive upload adds its ``archive`` part)."""
    spec = anon.get("/openapi.json").json()
    problems: list[str] = []
    checked = 0
    for route in _routes():
        for method in route.methods or ():
            where = f"{method} {route.path}"
            operation = spec["paths"][route.path][method.lower()]
            documented = _documented_fields(operation)
            models = _field_models(route)
            if get_fields in _calls(route):
                if len(models) != 1:
                    problems.append(f"{where}: reads fields without one model: {models}")
                    continue
                if parsed(models[0]) not in _calls(route):
                    problems.append(f"{where}: {models[0].__name__} is not filled by parsed()")
            if not models:
                if documented and route.path != "/import/domain":
                    problems.append(f"{where}: documents fields {documented} it never reads")
                continue
            names = {spec.name for spec in field_specs(models[0])}
            checked += 1
            if not documented:
                problems.append(f"{where}: reads {sorted(names)} but documents no field")
            for place, fields in documented.items():
                if fields != names:
                    problems.append(
                        f"{where} {place}: documents {sorted(fields)}, parses {sorted(names)}"
                    )
    assert checked >= 15
    assert not problems, "\n".join(problems)
