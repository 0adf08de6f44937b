"""The OpenAPI document tells the truth: every operation declares the statuses its kind of route can answer
(derived here from the routes themselves, independently of api/openapi.py's table, plus the few kinds only that
table can know), each 4xx/5xx in the contract's error shape, FastAPI's HTTPValidationError nowhere, security
on protected operations only, response models and media types for every success, examples where they help."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi import FastAPI, UploadFile
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from facegate.api.errors import ErrorBody
from facegate.api.openapi import DECLARED, STATUSES, api_routes
from facegate.app import create_app
from facegate.config import Settings
from facegate.services.runtime import Runtime
from facegate.services.schemas import EnrollResult, IdentifyResult

ERROR_REF = "#/components/schemas/ErrorBody"
PUBLIC = {("/health", "get"), ("/ready", "get")}
SECURITY = [{"ApiKey": []}, {"Bearer": []}]


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app()


@pytest.fixture(scope="module")
def doc(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]


def _auth_scope(route: APIRoute) -> tuple[bool, str | None]:
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        if dependant.call is not None and hasattr(dependant.call, "required_scope"):
            return True, dependant.call.required_scope
        stack.extend(dependant.dependencies)
    return False, None


def _fields(route: APIRoute) -> list[tuple[str, Any]]:
    found, stack = [], [route.dependant]
    while stack:
        d = stack.pop()
        found += [("path", f) for f in d.path_params] + [("query", f) for f in d.query_params]
        found += [("body", f) for f in d.body_params]
        stack.extend(d.dependencies)
    return found


def expected_statuses(route: APIRoute) -> set[int]:
    """What a route can answer besides success, from what it visibly is; and what only the table knows."""
    expected: set[int] = set()
    has_auth, scope = _auth_scope(route)
    if has_auth:
        expected |= {401, 429} | ({403} if scope else set())
    fields = _fields(route)
    if fields:
        expected.add(422)
    if any(where == "path" for where, _ in fields):
        expected.add(404)
    if any(where == "body" for where, _ in fields):
        expected |= {400, 413}
    if any(
        UploadFile in (f.field_info.annotation, *getattr(f.field_info.annotation, "__args__", ())) for _, f in fields
    ):
        expected |= {413, 415, 503}
    for kind in DECLARED.get(route.name, ()):
        expected |= set(STATUSES[kind])
    return expected


def test_every_operation_declares_the_statuses_of_its_route_kind(app: FastAPI, doc: dict[str, Any]) -> None:
    routes = list(api_routes(app))
    assert len(routes) == len(_operations(doc))
    for route in routes:
        for method in route.methods:
            declared = {int(s) for s in doc["paths"][route.path_format][method.lower()]["responses"]}
            missing = expected_statuses(route) - declared
            assert not missing, f"{method} {route.path_format} does not declare {sorted(missing)}"


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/api/v1/enroll", {201, 400, 401, 403, 404, 409, 413, 415, 422, 429, 503}),
        ("post", "/api/v1/identify", {200, 400, 401, 403, 413, 415, 422, 429, 503}),
        ("post", "/api/v1/compare", {200, 400, 401, 403, 413, 415, 422, 429, 503}),
        ("get", "/api/v1/people/{person_id}", {200, 400, 401, 403, 404, 422, 429}),
        ("patch", "/api/v1/people/{person_id}", {200, 400, 401, 403, 404, 409, 413, 422, 429}),
        ("get", "/api/v1/telemetry", {200, 401, 403, 429}),
        ("get", "/health", {200}),
        ("get", "/ready", {200, 503}),
        # The live frame comes from the process's memory, never the blob store: no 503.
        ("get", "/api/v1/streams/{stream_id}/frame", {200, 400, 401, 403, 404, 422, 429}),
        ("get", "/api/v1/matches/{match_id}/crop", {200, 401, 403, 404, 422, 429, 503}),
        ("patch", "/api/v1/streams/{stream_id}", {200, 400, 401, 403, 404, 413, 422, 429}),
    ],
)
def test_statuses_of_some_operations_exactly(doc: dict[str, Any], method: str, path: str, statuses: set[int]) -> None:
    assert {int(s) for s in doc["paths"][path][method]["responses"]} == statuses


def test_every_error_response_is_the_contract_error_model(doc: dict[str, Any]) -> None:
    for path, method, op in _operations(doc):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            assert response["description"], (method, path, status)
            schema = response["content"]["application/json"]["schema"]
            expected = "#/components/schemas/NotReadyBody" if (path, status) == ("/ready", "503") else ERROR_REF
            assert schema == {"$ref": expected}, (method, path, status)
            assert set(response["content"]) == {"application/json"}


def test_the_error_models_have_the_contract_shape(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for body in ("ErrorBody", "NotReadyBody"):
        assert schemas[body]["required"] == ["error"]
        detail = schemas[schemas[body]["properties"]["error"]["$ref"].rsplit("/", 1)[-1]]
        assert {"code", "message"} <= set(detail["required"])
        assert detail["properties"]["code"]["type"] == "string"
        assert detail["properties"]["message"]["type"] == "string"
        # Optional keys are absent when unused, never null.
        assert "null" not in json.dumps(detail["properties"])
    assert "parts" in schemas["NotReadyDetail"]["required"]


def test_no_fastapi_validation_error_schema_anywhere(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text
    assert "ValidationError" not in doc["components"]["schemas"]


def test_security_on_protected_operations_only(app: FastAPI, doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["ApiKey"]["description"],
    }
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    for route in api_routes(app):
        has_auth, _ = _auth_scope(route)
        for method in route.methods:
            op = doc["paths"][route.path_format][method.lower()]
            if (route.path_format, method.lower()) in PUBLIC:
                assert not has_auth
                assert "security" not in op, route.path_format
                assert not {"401", "403", "429"} & set(op["responses"])
            else:
                assert has_auth, f"{method} {route.path_format} is neither public nor behind a key"
                assert op["security"] == SECURITY, route.path_format


def test_security_follows_the_deployment_when_metrics_are_public() -> None:
    doc = create_app(Settings(auth={"public_metrics": True})).openapi()
    metrics = doc["paths"]["/metrics"]["get"]
    assert "security" not in metrics
    assert set(metrics["responses"]) == {"200"}
    assert doc["paths"]["/api/v1/telemetry"]["get"]["security"] == SECURITY


def test_every_success_has_a_model_or_media_type(doc: dict[str, Any]) -> None:
    for path, method, op in _operations(doc):
        for status, response in op["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = response.get("content")
            assert content, (method, path, status)
            if "application/json" in content:
                schema = content["application/json"]["schema"]
                assert "$ref" in schema or "$ref" in schema.get("items", {}), (method, path, status)
    ref = lambda path: doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]  # noqa: E731
    assert ref("/health") == {"$ref": "#/components/schemas/HealthStatus"}
    assert ref("/ready") == {"$ref": "#/components/schemas/ReadyStatus"}
    assert ref("/api/v1/telemetry") == {"$ref": "#/components/schemas/TelemetrySummary"}
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4; charset=utf-8"]
    crop = doc["paths"]["/api/v1/matches/{match_id}/crop"]["get"]["responses"]["200"]["content"]
    assert list(crop) == ["image/jpeg"]
    photo = doc["paths"]["/api/v1/people/{person_id}/faces/{face_id}/image"]["get"]["responses"]["200"]["content"]
    assert {"image/jpeg", "image/png", "image/webp"} <= set(photo)


def test_headers_that_come_with_statuses(doc: dict[str, Any]) -> None:
    enroll = doc["paths"]["/api/v1/enroll"]["post"]["responses"]
    assert enroll["429"]["headers"]["Retry-After"]["required"] is True
    assert "Retry-After" in enroll["503"]["headers"]
    assert enroll["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(enroll["201"]["headers"])


def test_uploads_declare_image_media_types(doc: dict[str, Any]) -> None:
    for path, fields in (("/api/v1/enroll", {"image"}), ("/api/v1/compare", {"image_a", "image_b"})):
        form = doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert set(form["encoding"]) == fields
        for encoding in form["encoding"].values():
            assert "image/jpeg" in encoding["contentType"]


def test_optional_form_and_query_fields_are_never_null(doc: dict[str, Any]) -> None:
    # Multipart and query strings carry text: a field not sent is the None, "null" would be the text "null".
    enroll = doc["components"]["schemas"]["Body_enroll"]["properties"]
    assert enroll["person_id"] == {
        "type": "string",
        "title": "Person Id",
        "description": enroll["person_id"]["description"],
    }
    matches = {p["name"]: p for p in doc["paths"]["/api/v1/matches"]["get"]["parameters"]}
    assert matches["since"]["schema"]["type"] == "string"
    assert "anyOf" not in matches["person_id"]["schema"]


def test_examples_are_realistic_and_valid(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    [enrolled] = schemas["EnrollResult"]["examples"]
    [identified] = schemas["IdentifyResult"]["examples"]
    assert EnrollResult.model_validate(enrolled).person.name == "Colin Powell"
    known, unknown = IdentifyResult.model_validate(identified).faces
    assert known.match is not None and unknown.match is None
    assert enrolled["person"]["external_id"] is None and identified["faces"][1]["match"] is None
    form = doc["paths"]["/api/v1/enroll"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["examples"]["new_person"]["value"]["name"] == "Colin Powell"
    assert schemas["Body_enroll"]["properties"]["metadata"]["examples"] == ['{"team": "blue"}']
    assert schemas["Body_identify"]["properties"]["threshold"]["examples"] == [0.56]


def test_links_point_at_real_operations_and_parameters(doc: dict[str, Any]) -> None:
    by_id = {op["operationId"]: op for _, _, op in _operations(doc)}
    assert len(by_id) == len(_operations(doc)), "operation ids are unique"
    linked = 0
    for _, _, op in _operations(doc):
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                target = by_id[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", [])}
                assert set(link["parameters"]) <= names, link
                for expression in link["parameters"].values():
                    assert re.fullmatch(r"\$response\.body#(/\w+)+", expression), expression
                linked += 1
    assert linked >= 10


def test_the_served_document_is_the_apps(client: TestClient, runtime: Runtime) -> None:
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == create_app(runtime=runtime).openapi()


def test_real_errors_fit_the_declared_models(client: TestClient, runtime: Runtime) -> None:
    invalid = client.get("/api/v1/people", params={"limit": "0"})
    assert invalid.status_code == 422
    body = ErrorBody.model_validate(invalid.json())
    assert body.error.field == "limit" and body.error.details
    missing = client.get("/api/v1/people/nobody")
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"code", "message"}
    ErrorBody.model_validate(missing.json())
    with TestClient(create_app(runtime=runtime)) as no_key:
        anonymous = no_key.get("/api/v1/people")
    assert anonymous.status_code == 401
    ErrorBody.model_validate(anonymous.json())
    # /ready's 503 is checked against NotReadyBody in test_health.py.
