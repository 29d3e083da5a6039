"""Declaring an endpoint once: route, auth, validation of path/query/body, and its OpenAPI operation.

::

    @endpoint(bp, "POST", "/<id>/templates", body=TemplateCreate, response=TemplateRow, status=201,
              summary="Create a template")
    async def create_template(id: UUID, body: TemplateCreate) -> dict: ...

Path parameters are UUIDs (a bad one is a 400 VALIDATION, never a 500); the query string and the JSON
body are validated by pydantic models and handed to the handler as ``query=`` and ``body=``. The same
declaration feeds ``/openapi.json`` (http/openapi.py), so the document cannot drift from what is served.
"""

from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pydantic
from quart import Blueprint, Response, g, jsonify, request

from campaignsvc.http import identity as ident
from campaignsvc.http.context import services
from campaignsvc.http.errors import validation

_PATH_PARAM = re.compile(r"<(?:[a-z]+:)?([A-Za-z_]+)>")
_READ_METHODS = ("GET", "HEAD", "OPTIONS")


@attrs.define
class Operation:
    method: str
    path: str  # OpenAPI form: /api/campaigns/{id}
    summary: str
    tags: tuple[str, ...]
    path_params: tuple[str, ...]
    query: type[pydantic.BaseModel] | None
    body: type[pydantic.BaseModel] | None
    response: Any  # a model, list[model], a JSON schema dict, or None
    status: int
    errors: tuple[int, ...]
    auth: str
    content_type: str = "application/json"
    # Other representations of the success response, by content type (negotiated by the handler).
    alternatives: dict[str, Any] = attrs.field(factory=dict)
    # Error statuses whose body is not the error envelope (health's 503 is the health report).
    error_schemas: dict[int, Any] = attrs.field(factory=dict)
    # Security schemes (http/openapi.py) the handler checks itself, besides those of ``auth``.
    credentials: tuple[str, ...] = ()


OPERATIONS: list[Operation] = []


def field_errors(exc: pydantic.ValidationError, prefix: str = "") -> list[dict[str, str]]:
    details = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        details.append({"path": path, "message": err["msg"]})
    return details


def _parse_path(params: tuple[str, ...], values: dict[str, str]) -> dict[str, uuid.UUID]:
    parsed: dict[str, uuid.UUID] = {}
    bad = []
    for name in params:
        try:
            parsed[name] = uuid.UUID(values[name])
        except (ValueError, KeyError):
            bad.append({"path": name, "message": "must be a UUID"})
    if bad:
        raise validation("Validation failed", bad)
    return parsed


_NUL = "must not contain NUL characters"
_MAX_PROBLEMS = 20


def _unstorable(value: Any, path: str, out: list[dict[str, str]]) -> list[dict[str, str]]:
    """Values JSON lets through that PostgreSQL cannot store (text and jsonb): NUL characters, NaN and
    infinities. They are a 400 at the edge, never an error from the database."""
    if len(out) >= _MAX_PROBLEMS:
        return out
    if isinstance(value, str):
        if "\x00" in value:
            out.append({"path": path, "message": _NUL})
    elif isinstance(value, float):
        if not math.isfinite(value):
            out.append({"path": path, "message": "must be a finite number"})
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                out.append({"path": where.replace("\x00", "\\u0000"), "message": "keys " + _NUL})
            else:
                _unstorable(item, where, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _unstorable(item, f"{path}.{i}" if path else str(i), out)
    return out


def _parse_query(model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    raw: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        values = request.args.getlist(key)
        if not values:
            continue
        if any("\x00" in v for v in values):
            raise validation("Validation failed", [{"path": key, "message": _NUL}])
        annotation = str(field.annotation)
        raw[key] = values if annotation.startswith(("list", "typing.List")) else values[-1]
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise validation("Validation failed", field_errors(exc)) from None


async def _parse_body(model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    data = await request.get_data()
    if not data.strip():
        payload: Any = {}
    else:
        try:
            payload = pydantic.TypeAdapter(Any).validate_json(data)
        except pydantic.ValidationError:
            raise validation("Request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise validation("Validation failed", [{"path": "", "message": "the body must be a JSON object"}])
    problems = _unstorable(payload, "", [])
    if problems:
        raise validation("Validation failed", problems)
    try:
        # Strict JSON types, as the document states them: false is not 0, 0 is not false, "5" is not 5.
        return model.model_validate_json(data if payload else b"{}", strict=True)
    except pydantic.ValidationError as exc:
        raise validation("Validation failed", field_errors(exc)) from None


def _authenticate(auth: str, write: bool) -> None:
    if auth == "public":
        return
    ident.check_internal_auth(request.headers, services().settings.internal_auth_secret)
    if auth == "internal":
        return
    who = ident.identify(request.headers)
    g.identity = who
    if write:
        ident.require_write(who)


def endpoint(
    bp: Blueprint,
    method: str,
    rule: str,
    *,
    summary: str,
    tags: tuple[str, ...] = ("campaigns",),
    query: type[pydantic.BaseModel] | None = None,
    body: type[pydantic.BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    auth: str = "tenant",
    write: bool | None = None,
    content_type: str = "application/json",
    alternatives: dict[str, Any] | None = None,
    error_schemas: dict[int, Any] | None = None,
    credentials: tuple[str, ...] = (),
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Register ``handler`` on ``bp`` at ``rule`` and describe it in the OpenAPI document."""
    method = method.upper()
    path_params = tuple(_PATH_PARAM.findall(rule))
    is_write = method not in _READ_METHODS if write is None else write
    prefix = bp.url_prefix or ""

    def decorate(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(handler)
        async def view(**values: str) -> Any:
            _authenticate(auth, is_write)
            kwargs: dict[str, Any] = dict(_parse_path(path_params, values))
            if query is not None:
                kwargs["query"] = _parse_query(query)
            if body is not None:
                kwargs["body"] = await _parse_body(body)
            result = await handler(**kwargs)
            if isinstance(result, Response):
                return result
            if status == 204:
                return Response("", status=204)
            response_ = jsonify(result)
            response_.status_code = status
            return response_

        bp.add_url_rule(rule, endpoint=handler.__name__, view_func=view, methods=[method])
        # 401: identity or internal auth; 403: viewers' writes and lifecycle actions of others.
        auth_errors = {"tenant": (401, 403) if is_write else (401,), "internal": (401,)}.get(auth, ())
        implied: tuple[int, ...] = (400,) if (path_params or query or body) else ()
        if auth != "public":  # the database did not answer in time
            implied += (503,)
        OPERATIONS.append(
            Operation(
                method=method,
                path=_PATH_PARAM.sub(r"{\1}", prefix + rule).rstrip("/") or "/",
                summary=summary,
                tags=tags,
                path_params=path_params,
                query=query,
                body=body,
                response=response,
                status=status,
                errors=tuple(sorted({*implied, *auth_errors, *errors})),
                auth=auth,
                content_type=content_type,
                alternatives=dict(alternatives or {}),
                error_schemas=dict(error_schemas or {}),
                credentials=credentials,
            )
        )
        return handler

    return decorate
