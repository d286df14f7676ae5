"""The REST API's OpenAPI schema, from a running server: valid OpenAPI 3, generated without
warnings, and every documented operation answers as documented (status and JSON body).

schemathesis is not installed; this is the same idea, small: per path and method, a request
with an `admin` bearer token and a minimal valid body built from the documented request
schema, and one without a token; the status must be a documented one and a JSON body must
validate (jsonschema) against that response's documented schema.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import re
import sys
import time
import uuid
from pathlib import Path

import jsonschema
import jwt
import pytest
import requests
from hypothesis import find, strategies as st

from tests.servers import BASE_ENV, ROOT, fresh_sqlite, manage, start_daphne

JWT_SECRET = "openapi-tests-hs256-secret-with-more-than-32-characters"
SUPABASE_URL = "http://127.0.0.1:54321"
SERVER_ENV = {
    "SUPABASE_URL": SUPABASE_URL, "SUPABASE_JWT_SECRET": JWT_SECRET, "SUPABASE_VERIFY_USER": "false",
    "REDIS_URL": "", "REDIS_PREFIX": f"openapi{os.getpid()}",
    "RATE_LIMIT_REQUESTS": "100000", "RATE_LIMIT_HANDSHAKES": "100000",
    # Nothing here may reach the internet: no feeds, and a Horizon address that refuses at once.
    "MARKET_FEED_IN_PROCESS": "false", "TRANSACTIONS_IN_PROCESS": "false",
    "STELLAR_HORIZON_URL": "http://127.0.0.1:9", "HORIZON_REQUEST_TIMEOUT": "2",
}
METHODS = ("get", "post", "put", "patch", "delete")


def admin_token() -> str:
    now = int(time.time())
    return jwt.encode({"sub": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated", "iss": f"{SUPABASE_URL}/auth/v1",
                       "iat": now, "exp": now + 3600, "app_metadata": {"permissions": ["admin"]}}, JWT_SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {**SERVER_ENV, "DATABASE_URL": fresh_sqlite(tmp_path_factory.mktemp("openapi-db"))}
    manage(env, "migrate", "--noinput")
    srv = start_daphne("galaxy.asgi:application", env, ROOT / "artifacts" / f"openapi-server-{os.getpid()}.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def spec(server) -> dict:
    response = requests.get(f"{server.url}/api/schema/", params={"format": "json"}, timeout=30)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def openapi_meta_schema(version: str) -> dict:
    """The OpenAPI 3.x JSON Schema drf-spectacular ships (read as a file: no Django here)."""
    package = Path(importlib.util.find_spec("drf_spectacular").origin).parent
    return json.loads((package / "validation" / f"openapi_{version}_schema.json").read_text())


def test_the_schema_is_valid_openapi_3(spec):
    assert spec["openapi"].startswith("3.0")
    jsonschema.validate(spec, openapi_meta_schema("3_0"))
    for path in ["/health", "/metrics", "/api/auth/me", "/api/market/feed", "/api/transactions/",
                 "/api/transactions/submit", "/api/system/notifications"]:
        assert path in spec["paths"], path
    assert spec["components"]["securitySchemes"]["supabaseBearer"]["scheme"] == "bearer"


def test_the_schema_generates_without_warnings(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml")],
                            cwd=ROOT, env={**os.environ, **BASE_ENV, **SERVER_ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stderr and "Error" not in result.stderr, result.stderr


# -- schema-driven calls --------------------------------------------------------------------------

def resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        node = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def minimal(spec: dict, schema: dict):
    """The smallest value the schema accepts: required properties only, first enum, min lengths."""
    schema = resolve(spec, schema)
    if "allOf" in schema:
        return minimal(spec, schema["allOf"][0])
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        return {name: minimal(spec, schema["properties"][name]) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal(spec, schema["items"])] * max(1, schema.get("minItems", 0))
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    if "pattern" in schema:
        return find(st.from_regex(schema["pattern"], fullmatch=True), lambda _: True)
    return "x" * max(1, schema.get("minLength", 0))


def as_json_schema(spec: dict, schema):
    """OpenAPI 3.0 schema -> JSON Schema: `nullable` becomes a null alternative, refs inlined."""
    if isinstance(schema, list):
        return [as_json_schema(spec, item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = copy.deepcopy(resolve(spec, schema))
    nullable = schema.pop("nullable", False)
    converted = {key: as_json_schema(spec, value) if key in ("items", "additionalProperties", "allOf", "oneOf", "anyOf") else value
                 for key, value in schema.items() if key not in ("readOnly", "writeOnly", "example", "discriminator")}
    if "properties" in converted:
        converted["properties"] = {name: as_json_schema(spec, value) for name, value in converted["properties"].items()}
    if nullable:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def call(server, spec: dict, path: str, method: str, operation: dict, token: str | None) -> requests.Response:
    url = server.url + path
    for parameter in [*operation.get("parameters", [])]:
        if parameter.get("in") == "path":
            url = url.replace("{" + parameter["name"] + "}", str(minimal(spec, parameter.get("schema", {}))))
    body = None
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body = minimal(spec, content["application/json"]["schema"])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method.upper(), url, json=body, headers=headers, timeout=30)


def check_answer(spec: dict, path: str, method: str, operation: dict, response: requests.Response) -> None:
    where = f"{method.upper()} {path} -> {response.status_code}"
    documented = operation["responses"]
    assert str(response.status_code) in documented, f"{where}: not a documented status ({sorted(documented)}): {response.text[:300]}"
    content = documented[str(response.status_code)].get("content", {})
    media = response.headers.get("Content-Type", "").split(";")[0]
    if media == "application/json":
        assert "application/json" in content, f"{where}: JSON body, none documented"
        schema = content["application/json"].get("schema")
        if schema:
            jsonschema.validate(response.json(), as_json_schema(spec, schema))
    else:
        assert media in content, f"{where}: {media} not documented ({sorted(content)})"


def test_every_operation_answers_as_documented_with_an_admin_token(server, spec):
    token = admin_token()
    seen = []
    for path, method, operation in operations(spec):
        check_answer(spec, path, method, operation, call(server, spec, path, method, operation, token))
        seen.append(f"{method} {path}")
    assert "post /api/system/notifications" in seen and "get /health" in seen


def test_every_protected_operation_answers_as_documented_without_a_token(server, spec):
    for path, method, operation in operations(spec):
        response = call(server, spec, path, method, operation, None)
        check_answer(spec, path, method, operation, response)
        open_to_all = {} in operation.get("security", [{}]) or not operation.get("security")
        if not open_to_all:
            assert response.status_code == 401, f"{method} {path}: {response.status_code}"


def test_swagger_ui_answers(server):
    response = requests.get(f"{server.url}/api/docs/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "swagger-ui" in response.text and "/api/schema/" in response.text


def test_swagger_ui_loads_its_files_from_this_server_not_a_cdn(server):
    html = requests.get(f"{server.url}/api/docs/", timeout=10).text
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert any("swagger-ui-bundle" in a for a in assets), html[:2000]
    for asset in assets:
        assert not asset.startswith(("http://", "https://", "//")), f"{asset} is not served by us"
        response = requests.get(f"{server.url}{asset}", timeout=10)
        assert response.status_code == 200, asset
