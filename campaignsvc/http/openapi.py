"""``GET /openapi.json``: the OpenAPI 3.1 document built from the endpoint declarations (http/api.py)."""

from __future__ import annotations

import typing
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
    "OrganizationId": {"type": "apiKey", "in": "header", "name": "X-Organization-Id"},
    "UserId": {"type": "apiKey", "in": "header", "name": "X-User-Id"},
    "UserRole": {"type": "apiKey", "in": "header", "name": "X-User-Role"},
    "InternalAuth": {"type": "apiKey", "in": "header", "name": "X-Internal-Auth"},
}


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
        paths.setdefault(op.path, {})[op.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "campaignsvc",
            "version": __version__,
            "description": "Cold-outreach campaigns for a Telegram-first CRM. Identity comes from the gateway "
            "headers; X-Internal-Auth is required when the service has INTERNAL_AUTH_SECRET set.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


@bp.get("/openapi.json")
async def openapi_json() -> Response:
    return jsonify(build_document())
