"""``GET /openapi.json``: the OpenAPI 3.1 document built from the endpoint declarations (http/api.py).

Each operation's examples (its parameters, request body and the responses seen) are real exchanges with
the service, recorded by the conformance test (tests/integration/test_openapi_conformance.py) into
``http/examples.json`` and merged here; tests/unit/test_openapi_examples.py fails when an operation has
none or one no longer matches its schema. ``GET /docs`` (http/docs.py) shows the document.
"""

from __future__ import annotations

import functools
import json
import typing
from importlib import resources
from typing import Any, Literal

import pydantic
from pydantic.json_schema import models_json_schema
from quart import Blueprint, Response, jsonify

from campaignsvc import __version__
from campaignsvc.http.api import OPERATIONS, Operation

bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/{model}"
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_CODES = (
    "VALIDATION",
    "BAD_REQUEST",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "CONFLICT",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "RATE_LIMITED",
    "SERVICE_UNAVAILABLE",
    "INTERNAL_ERROR",
)
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string"},
        "code": {"type": "string", "enum": list(ERROR_CODES)},
        "details": {"description": "VALIDATION: [{path, message}]; CONFLICT: what conflicts"},
    },
}
_ERROR_TEXT = {
    400: "Invalid input (code VALIDATION or BAD_REQUEST)",
    401: "Missing or invalid identity headers or internal authentication",
    403: "Not allowed for this role",
    404: "Not found in this organization",
    409: "Conflicts with the current state",
    503: "Unavailable (the database, or for /ready the dispatcher, is not ready)",
}
SECURITY_SCHEMES = {
    "OrganizationId": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Organization-Id",
        "description": "The caller's organization (UUID), set by the gateway. Required.",
    },
    "UserId": {
        "type": "apiKey",
        "in": "header",
        "name": "X-User-Id",
        "description": "The signed-in user (UUID), set by the gateway; absent for a peer service.",
    },
    "UserRole": {
        "type": "apiKey",
        "in": "header",
        "name": "X-User-Role",
        "description": "owner, admin, supervisor, bidi or viewer (read-only); bidi when absent.",
    },
    "InternalAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Internal-Auth",
        "description": "Must equal INTERNAL_AUTH_SECRET when the service has one set; ignored otherwise.",
    },
    "EventsIngestSecret": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Events-Ingest-Secret",
        "description": "Must equal EVENTS_INGEST_SECRET when it is set (POST /api/campaigns/events only).",
    },
}


EXAMPLES_FILE = "examples.json"
EXAMPLE_NAME = "recorded"


@functools.cache
def load_examples() -> dict[str, Any]:
    """``http/examples.json``: ``{"METHOD /path": {"request": {"parameters": {name: value}, "body"?: …},
    "responses": {status: {content type: body}}}}`` (a 204's content is ``{}``)."""
    file = resources.files("campaignsvc.http").joinpath(EXAMPLES_FILE)
    if not file.is_file():
        return {}
    examples: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return examples


def operation_key(op: Operation) -> str:
    return f"{op.method} {op.path}"


def _recorded(value: Any) -> dict[str, Any]:
    return {EXAMPLE_NAME: {"summary": "Recorded from the service", "value": value}}


def _merge_examples(operation: dict[str, Any], example: dict[str, Any]) -> None:
    """Put a recorded exchange into its operation; parts the operation does not document are left out
    (the example test reports them)."""
    request = example.get("request", {})
    values = request.get("parameters", {})
    for param in operation["parameters"]:
        if param["name"] in values:
            param["example"] = values[param["name"]]
    if "body" in request and "requestBody" in operation:
        operation["requestBody"]["content"]["application/json"]["examples"] = _recorded(request["body"])
    for status, by_type in example.get("responses", {}).items():
        content = operation["responses"].get(status, {}).get("content", {})
        for content_type, body in by_type.items():
            if content_type in content:
                content[content_type]["examples"] = _recorded(body)


def _model_of(tp: Any) -> tuple[type[pydantic.BaseModel] | None, bool]:
    """(model, is_list) for ``Model`` or ``list[Model]``; (None, False) otherwise."""
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return tp, False
    if typing.get_origin(tp) is list:
        (inner,) = typing.get_args(tp)
        if isinstance(inner, type) and issubclass(inner, pydantic.BaseModel):
            return inner, True
    return None, False


Mode = Literal["validation", "serialization"]


def _collect_models(ops: list[Operation]) -> list[tuple[type[pydantic.BaseModel], Mode]]:
    seen: dict[tuple[type[pydantic.BaseModel], Mode], None] = {}
    for op in ops:
        if op.body is not None:
            seen[(op.body, "validation")] = None
        for response in (op.response, *op.alternatives.values(), *op.error_schemas.values()):
            model, _ = _model_of(response)
            if model is not None:
                seen[(model, "serialization")] = None
    return list(seen)


def _query_parameters(model: type[pydantic.BaseModel], schema: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        prop = schema.get("properties", {}).get(key, {})
        param: dict[str, Any] = {"name": key, "in": "query", "required": field.is_required(), "schema": prop}
        if field.description:
            param["description"] = field.description
        params.append(param)
    return params


def build_document() -> dict[str, Any]:
    models = _collect_models(OPERATIONS)
    refs, definitions = models_json_schema(models, ref_template=_REF) if models else ({}, {"$defs": {}})
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    schemas["Error"] = ERROR_SCHEMA

    def ref_for(model: type[pydantic.BaseModel], mode: Mode) -> dict[str, Any]:
        return refs[(model, mode)]

    def schema_of(response: Any) -> dict[str, Any]:
        model, is_list = _model_of(response)
        if model is None:
            return response if isinstance(response, dict) else {}
        schema = ref_for(model, "serialization")
        return {"type": "array", "items": schema} if is_list else schema

    examples = load_examples()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        operation: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method.lower()}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "tags": list(op.tags),
            "parameters": [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
                for p in op.path_params
            ],
            "responses": {},
        }
        if op.query is not None:
            operation["parameters"] += _query_parameters(
                op.query, op.query.model_json_schema(ref_template=_REF)
            )
        if op.body is not None:
            # An absent body reads as {}: it is required only when some field is.
            operation["requestBody"] = {
                "required": any(f.is_required() for f in op.body.model_fields.values()),
                "content": {"application/json": {"schema": ref_for(op.body, "validation")}},
            }
        if op.status == 204:
            operation["responses"]["204"] = {"description": "No content"}
        else:
            content = {op.content_type: {"schema": schema_of(op.response)}}
            content.update({ctype: {"schema": schema_of(r)} for ctype, r in op.alternatives.items()})
            operation["responses"][str(op.status)] = {"description": "OK", "content": content}
        for code in op.errors:
            schema = schema_of(op.error_schemas[code]) if code in op.error_schemas else _ERROR_REF
            operation["responses"][str(code)] = {
                "description": _ERROR_TEXT.get(code, "Error"),
                "content": {"application/json": {"schema": schema}},
            }
        if op.auth == "tenant":
            operation["security"] = [{"OrganizationId": [], "UserId": [], "UserRole": [], "InternalAuth": []}]
        elif op.auth == "internal":
            operation["security"] = [{"InternalAuth": []}]
        if op.credentials:
            operation["security"] = [
                {**requirement, **{name: [] for name in op.credentials}}
                for requirement in operation.get("security", [{}])
            ]
        if operation_key(op) in examples:
            _merge_examples(operation, examples[operation_key(op)])
        paths.setdefault(op.path, {})[op.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "campaignsvc",
            "version": __version__,
            "description": "Cold-outreach campaigns for a Telegram-first CRM. Identity comes from the gateway "
            "headers; X-Internal-Auth is required when the service has INTERNAL_AUTH_SECRET set. The examples are "
            "real exchanges with the service, recorded by its conformance test.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


@bp.get("/openapi.json")
async def openapi_json() -> Response:
    return jsonify(build_document())
