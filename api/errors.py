"""Domain errors and bad requests translated to HTTP, once, with a body naming what was wrong."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tickets.exceptions import (
    ActionNotAllowed,
    ConfirmationRequired,
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from tickets.messages.scripts import ScriptError, UnknownScript

# The one map from a domain error to its HTTP status, for the JSON API and the panel alike
# (the most specific class first).
_STATUS = [
    (UnknownScript, 404),
    (ScriptError, 422),
    (NotFound, 404),
    (ConfirmationRequired, 422),
    (InvalidInput, 422),
    (ActionNotAllowed, 409),
    (Conflict, 409),
    (PermissionDenied, 403),
]


def status_for(exc: DomainError) -> int:
    """The HTTP status of a refused request (anything else the core refuses is invalid input)."""
    for cls, code in _STATUS:
        if isinstance(exc, cls):
            return code
    return 422


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    body = {"error": exc.code, "message": exc.message, **exc.details}
    return JSONResponse(body, status_code=status_for(exc))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        parts = list(err.get("loc", ()))
        if parts[:1] == ["body"]:
            parts = parts[1:]
        loc = [str(p) for p in parts]
        errors.append({"loc": ".".join(loc), "msg": err.get("msg", "invalid")})
    message = "; ".join(f"{e['loc']}: {e['msg']}" if e["loc"] else e["msg"] for e in errors)
    return JSONResponse(
        {"error": "invalid", "message": message or "invalid request", "errors": errors},
        status_code=422,
    )


def install(app: FastAPI) -> None:
    """Register the handlers on the app."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
