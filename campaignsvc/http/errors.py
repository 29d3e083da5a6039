"""The error envelope ``{"error", "code", "details"?}`` and the handlers that produce it.

Every bad input is a 4xx with a code from the original's vocabulary; a 500 means a bug, and is logged
with its traceback.
"""

from __future__ import annotations

from typing import Any

from quart import Quart, Response, jsonify
from werkzeug.exceptions import HTTPException

from campaignsvc.errors import DatabaseUnavailable, QueryTimeout
from campaignsvc.logs import get_logger
from campaignsvc.usecases.errors import Conflict, Invalid, NotFound, Refused, WrongState

log = get_logger(__name__)

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


# How each kind of use-case refusal is answered.
_REFUSALS: dict[type[Refused], tuple[int, str]] = {
    NotFound: (404, "NOT_FOUND"),
    Invalid: (400, "VALIDATION"),
    WrongState: (400, "BAD_REQUEST"),
    Conflict: (409, "CONFLICT"),
}


class ApiError(Exception):
    """An error answered to the client as the envelope, with its HTTP status."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def bad_request(message: str, details: Any = None) -> ApiError:
    return ApiError(400, "BAD_REQUEST", message, details)


def validation(message: str, details: Any = None) -> ApiError:
    return ApiError(400, "VALIDATION", message, details)


def conflict(message: str, details: Any = None) -> ApiError:
    return ApiError(409, "CONFLICT", message, details)


def forbidden(message: str = "Insufficient permissions") -> ApiError:
    return ApiError(403, "FORBIDDEN", message)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message)


def envelope(status: int, code: str, message: str, details: Any = None) -> Response:
    body: dict[str, Any] = {"error": message, "code": code}
    if details is not None:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    return response


def install(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def _api_error(exc: ApiError) -> Response:
        return envelope(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(Refused)
    async def _refused(exc: Refused) -> Response:
        status, code = _REFUSALS.get(type(exc), (400, "BAD_REQUEST"))
        return envelope(status, code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = {404: "Not found", 405: "Method not allowed"}.get(status, exc.name)
        if status == 400 and exc.description:
            message = exc.description
        return envelope(status, _HTTP_CODES.get(status, "BAD_REQUEST"), message)

    @app.errorhandler(DatabaseUnavailable)
    async def _db_down(exc: DatabaseUnavailable) -> Response:
        log.warning("http.database_unavailable", error=str(exc))
        return envelope(503, "SERVICE_UNAVAILABLE", "Database unavailable, try again")

    @app.errorhandler(QueryTimeout)
    async def _db_timeout(exc: QueryTimeout) -> Response:
        log.warning("http.query_timeout", error=str(exc))
        return envelope(503, "SERVICE_UNAVAILABLE", "The database took too long to answer, try again")

    @app.errorhandler(Exception)
    async def _bug(exc: Exception) -> Response:
        log.exception("http.unhandled_error", error_type=type(exc).__name__)
        return envelope(500, "INTERNAL_ERROR", "Internal server error")
