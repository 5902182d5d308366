"""HTTP plumbing of the API: JSON errors, bounded bodies, strict parsing.

Every error is :class:`ApiError` turned into an :class:`~gateway.api._models.ErrorBody`; a bad
request is a 4xx naming the field at fault, never a 5xx. Messages never carry a secret, an
API key or a signature: they name headers and fields, not their values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.api._models import ErrorBody, ErrorField

__all__ = [
    "ApiError",
    "error_response",
    "json_response",
    "parse_body",
    "parse_json",
    "read_body",
    "validation_error",
]

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An answer other than success: status, stable code, one line, fields at fault."""

    def __init__(self, status: int, code: str, message: str,
                 fields: Sequence[ErrorField] = (), headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.headers = dict(headers or {})

    @classmethod
    def invalid(cls, field: str, message: str, status: int = 422) -> ApiError:
        return cls(status, "invalid_request", f"{field}: {message}",
                   [ErrorField(field=field, message=message)])


def json_response(model: BaseModel, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status,
                        headers=dict(headers or {}))


def error_response(exc: ApiError) -> JSONResponse:
    body = ErrorBody(error=exc.code, message=exc.message, fields=exc.fields)
    return json_response(body, exc.status, exc.headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (whether it says its length or
    not), without reading more than ``limit + 1`` bytes of it."""
    declared = request.headers.get("content-length")
    too_large = ApiError(413, "too_large", f"the request body is larger than {limit} bytes",
                         [ErrorField(field="body", message=f"at most {limit} bytes")])
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_large
        except ValueError:
            raise ApiError.invalid("Content-Length", "not a number", 400) from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError.invalid("body", "empty; send a JSON document", 400)
    try:
        return json.loads(body)
    except RecursionError:
        raise ApiError.invalid("body", "nested too deeply", 400) from None
    except json.JSONDecodeError as exc:
        where = f" (line {exc.lineno} column {exc.colno})"
        raise ApiError.invalid("body", f"not valid JSON{where}: {exc.msg}", 400) from None
    except ValueError:  # bytes that are not UTF-8
        raise ApiError.invalid("body", "not valid JSON: not UTF-8 text", 400) from None


def parse_body(model: type[M], body: bytes) -> M:
    """``body`` as a ``model``: 400 for what is not JSON, 422 naming each field at fault."""
    data = parse_json(body)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, data) from None


def validation_error(exc: ValidationError, data: object) -> ApiError:
    fields = []
    for err in exc.errors(include_input=False, include_url=False):
        where = _field_name(err["loc"], data)
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        fields.append(ErrorField(field=where, message=message))
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
    more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
    return ApiError(422, "invalid_request", summary + more, fields)


def _field_name(loc: Sequence[int | str], data: object) -> str:
    """``subscriptions[0].target`` from a pydantic location, without the parts that are not in
    the data (union members, ``[key]``); ``body`` for the document itself."""
    out = ""
    current = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            out += _key(str(part), first=not out)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out += f"[{part}]"
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, str) and part != "[key]":
            out += _key(part, first=not out)  # a missing or an unknown key
            current = None
    return out or "body"


def _key(name: str, *, first: bool) -> str:
    if name.isidentifier():
        return name if first else f".{name}"
    return f"[{json.dumps(name)}]"
