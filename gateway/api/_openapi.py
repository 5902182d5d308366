"""The OpenAPI 3.1 document of the API, generated from its operations and pydantic models.

Request bodies use the models' validation schemas, responses their serialisation schemas,
so the document says exactly what the handlers accept and return. Each :class:`Operation`
also carries its endpoint: the routes are made from the same rows, so a route cannot be
missing from the document nor the document describe a route that does not exist.

A small generator on Starlette rather than FastAPI: the schemas are pydantic's own
(``models_json_schema``), as FastAPI's would be; but FastAPI validates bodies before the
handler with its own 422 format, reads the body whole before any limit (the API reads it
under ``api.max_body_bytes`` and ``api.body_timeout`` itself) and turns every error into
``{"detail": ...}``, so keeping the API's JSON errors ``{error, message, fields}`` would mean
overriding most of what it adds, for one more dependency and a second request path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api._models import ErrorBody

__all__ = ["Header", "Operation", "PathParam", "openapi_document"]

REF = "#/components/schemas/{model}"

_ERRORS = {
    400: "The body is not JSON, or a header is malformed.",
    401: "No API key, an unknown key (or, for hooks, a signature that does not verify).",
    403: "The API key lacks the scope this operation needs.",
    404: "No such task, subscription or hook source.",
    408: "The body did not arrive within api.body_timeout; the connection is closed.",
    409: "The subscription is no longer waiting (delivered, failed or skipped).",
    413: "The body is larger than the configured limit (api.max_body_bytes).",
    422: "The request does not fit the schema, or a subscriber is refused by its channel.",
}


@dataclass(frozen=True)
class PathParam:
    name: str
    pattern: str
    description: str


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    max_length: int = 255


@dataclass(frozen=True)
class Operation:
    method: Literal["get", "post", "delete"]
    path: str
    operation_id: str
    summary: str
    #: the API key scope it needs (None: no API key)
    scope: str | None
    responses: dict[int, tuple[str, type[BaseModel]]]
    errors: Sequence[int] = ()
    request: type[BaseModel] | None = None
    params: Sequence[PathParam] = ()
    headers: Sequence[Header] = ()
    response_headers: dict[int, Sequence[str]] = field(default_factory=dict)
    description: str = ""
    #: the handler serving it
    endpoint: Callable[[Request], Awaitable[Response]] | None = None

    def route(self) -> Route:
        if self.endpoint is None:
            raise ValueError(f"operation {self.operation_id} has no endpoint")
        return Route(self.path, self.endpoint, methods=[self.method.upper()])


Refs = dict[tuple[Any, str], Any]


def _schemas(operations: Sequence[Operation]) -> tuple[Refs, dict[str, Any]]:
    wanted: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorBody, "serialization")}
    for op in operations:
        if op.request is not None:
            wanted.add((op.request, "validation"))
        wanted.update((model, "serialization") for _, model in op.responses.values())
    ordered = sorted(wanted, key=lambda item: (item[0].__name__, item[1]))
    refs, defs = models_json_schema(ordered, ref_template=REF)
    return {key: value for key, value in refs.items()}, defs.get("$defs", {})


def _operation(op: Operation, refs: Refs) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.description:
        doc["description"] = op.description
    params: list[dict[str, Any]] = [
        {"name": p.name, "in": "path", "required": True, "description": p.description,
         "schema": {"type": "string", "pattern": p.pattern}}
        for p in op.params
    ]
    params += [
        {"name": h.name, "in": "header", "required": False, "description": h.description,
         "schema": {"type": "string", "minLength": 1, "maxLength": h.max_length}}
        for h in op.headers
    ]
    if params:
        doc["parameters"] = params
    if op.request is not None:
        doc["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": refs[(op.request, "validation")]}}}
    responses: dict[str, Any] = {}
    for status, (description, model) in op.responses.items():
        responses[str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": refs[(model, "serialization")]}},
        }
        names = op.response_headers.get(status, ())
        if names:
            responses[str(status)]["headers"] = {
                name: {"schema": {"type": "string"}} for name in names}
    error = {"content": {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}}
    for status in op.errors:
        responses[str(status)] = {"description": _ERRORS[status], **error}
    responses["default"] = {"description": "Restate unreachable (503) or failing (502), or "
                                           "an unexpected error (500).", **error}
    doc["responses"] = responses
    if op.scope is not None:
        doc["security"] = [{"apiKey": []}]
        doc["description"] = (doc.get("description", "") + f"\n\nNeeds an API key with the "
                              f"`{op.scope}` scope.").strip()
    else:
        doc["security"] = []
    return doc


def openapi_document(operations: Sequence[Operation], *, title: str, version: str,
                     description: str) -> dict[str, Any]:
    refs, defs = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"apiKey": {
                "type": "http", "scheme": "bearer",
                "description": "An API key from the configuration (api.keys), made with "
                               "`gateway api-key NAME`.",
            }},
        },
    }
