"""The OpenAPI 3.1 document of /api, generated from the views' declarations.

Every route of the api blueprint must carry an ``@operation`` (chat.api.operation);
its path comes from the URL rule, its parameters, body and answers from the
declared models (chat.api.inputs, chat.api.answers) and their JSON Schema from
pydantic, so the document says what the code does. Served at /api/openapi.json.
"""
from __future__ import annotations

import re
from http import HTTPStatus

from flask import Flask, current_app
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from . import answers, bp
from .fields import Id
from .inputs import rule_of
from .operation import Operation, operation

_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_REF = "#/components/schemas/{model}"


class _SchemaGenerator(GenerateJsonSchema):
    """Pydantic's JSON Schema without the title it makes up for every field."""

    def field_title_should_be_set(self, schema) -> bool:  # noqa: D102 - pydantic's hook
        return False


def _routes(app: Flask) -> list[tuple[str, str, Operation]]:
    """(OpenAPI path, method, declaration) for every route of the api blueprint."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.partition(".")[0] != bp.name:
            continue
        op = getattr(app.view_functions[rule.endpoint], "operation", None)
        if op is None:
            raise RuntimeError(f"{rule.endpoint} has no @operation declaration")
        path = _RULE_ARGUMENT.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), op))
    return sorted(found, key=lambda item: item[:2])


def _without_null(schema: dict) -> dict:
    """A query parameter's schema: a query string has no null."""
    branches = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
    if len(branches) == 1 and len(schema["anyOf"]) == 2:
        schema = {**{k: val for k, val in schema.items() if k != "anyOf"}, **branches[0]}
    return {k: val for k, val in schema.items() if not (k == "default" and val is None)}


def _parameters(path: str, op: Operation) -> list[dict]:
    # Every argument of an api route is an id (operation() reads each with path_id).
    params = [{"name": name, "in": "path", "required": True, "schema": rule_of(Id).json_schema()}
              for name in re.findall(r"{(\w+)}", path)]
    if op.query is not None:
        schema = op.query.model_json_schema(schema_generator=_SchemaGenerator)
        required = set(schema.get("required", ()))
        params += [{"name": name, "in": "query", "required": name in required,
                    "schema": _without_null(prop)}
                   for name, prop in schema["properties"].items()]
    return params


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(path: str, op: Operation, refs: dict) -> dict:
    entry: dict = {"summary": op.summary}
    params = _parameters(path, op)
    if params:
        entry["parameters"] = params
    if op.body is not None:
        needed = any(field.is_required() for field in op.body.model_fields.values())
        entry["requestBody"] = {"required": needed, **_json(refs[op.body])}
    if op.upload:
        entry["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}}}}}}
    entry["responses"] = {
        str(status): {"description": HTTPStatus(status).phrase,
                      **_json(refs[shape] if shape is not None else {"type": "object"})}
        for status, shape in sorted(op.answers.items())}
    if op.download:  # the file's own bytes, of its own type; 304 has no body
        entry["responses"] = {
            str(status): {"description": HTTPStatus(status).phrase,
                          **({} if status == 304 else {"content": {"*/*": {"schema": {
                              "type": "string", "format": "binary"}}}})}
            for status in sorted(op.answers)}
    entry["responses"]["default"] = {"description": "An error: docs/protocol.md's codes",
                                     **_json(refs[answers.Error])}
    if op.public:
        entry["security"] = []
    return entry


def build_openapi(app: Flask | None = None) -> dict:
    """The whole document, generated from the app's api routes (a fresh dict each time)."""
    app = app or current_app
    with app.app_context():  # some bounds are settings (CHAT_MAX_CONTENT)
        routes = _routes(app)
        models = {answers.Error}
        for _, _, op in routes:
            models.update(m for m in (op.body, *op.answers.values()) if m is not None)
        ordered = sorted(models, key=lambda m: m.__name__)
        keys, defs = models_json_schema([(m, "validation") for m in ordered], ref_template=_REF,
                                        schema_generator=_SchemaGenerator)
        refs = {model: keys[(model, "validation")] for model in ordered}
        paths: dict = {}
        for path, method, op in routes:
            paths.setdefault(path, {})[method] = _operation(path, op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Chat API", "version": "1",
                 "description": "docs/protocol.md 3.4. Errors: "
                                "{\"error\": {\"code\", \"message\"}}. Calls made with the "
                                "session cookie need the X-CSRFToken header."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie",
                                            "name": "session"}}},
        "security": [{"bearer": []}, {"session": []}],
    }


@bp.get("/openapi.json")
@operation({200: None}, public=True)
def openapi():
    """This document."""
    cached = current_app.extensions.get("chat_openapi")
    if cached is None:
        cached = current_app.extensions["chat_openapi"] = build_openapi()
    return cached
