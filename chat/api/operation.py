"""Declaring an API call: who may call it, what it takes, what it answers.

``@operation(...)`` under a route is the one place a view's request and
answers are declared: the view is handed its request parsed with the declared
models, and the document (chat.api.openapi) is generated from the same
declaration, so the two cannot disagree. The checks run in docs/protocol.md's order
(3.4): the flood limit (429, before anything else is read: chat.identity), login
(401), the path's ids, the body's envelope and the query string (400); the
service does the rest.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import wraps
from typing import Callable, Mapping

from flask import Response, current_app, request
from pydantic import BaseModel, ValidationError

from ..errors import ChatError
from ..identity import api_login_required
from .answers import Error
from .inputs import Body, Query
from .request import body as read_body
from .request import path_id

log = logging.getLogger("chat.api")


@dataclass(frozen=True)
class Operation:
    """One API call's declaration (the view's docstring is its summary)."""

    answers: Mapping[int, type[BaseModel] | None]  # status -> shape (None: any JSON object)
    body: type[Body] | None = None
    query: type[Query] | None = None
    whole: bool = False  # check every body field here: nothing to authorize comes first
    public: bool = False  # no login needed
    texts: tuple[str, ...] = ()  # path parameters that are text, not ids
    summary: str = ""
    upload: bool = False  # the body is multipart/form-data with one file part, read by the view
    download: bool = False  # success answers are the file's bytes (any type), not JSON


def operation(answers: Mapping[int, type[BaseModel] | None], *, body: type[Body] | None = None,
              query: type[Query] | None = None, whole: bool = False, public: bool = False,
              texts: tuple[str, ...] = (), upload: bool = False,
              download: bool = False) -> Callable:
    """Declare a view's call; the view gets ``body=`` and ``query=`` parsed, path ids as ints.

    Every state-changing call counts against the flood limit before any of this
    (``chat.identity.check_flood``, for the whole app).
    """
    def decorate(view: Callable) -> Callable:
        summary = (view.__doc__ or "").strip().partition("\n")[0]
        op = Operation(dict(answers), body, query, whole, public, texts, summary, upload,
                       download)

        @wraps(view)
        def run(**path: str):
            args: dict = {name: raw if name in op.texts else path_id(raw, name)
                          for name, raw in path.items()}
            if op.body is not None:
                args["body"] = op.body.parse(read_body(), whole=op.whole)
            if op.query is not None:
                args["query"] = op.query.parse(request.args.to_dict())
            return view(**args)

        run.operation = op
        return run if public else api_login_required(run)
    return decorate


def operation_of(endpoint: str | None) -> Operation | None:
    """The declaration of the view serving ``endpoint``."""
    view = current_app.view_functions.get(endpoint or "")
    return getattr(view, "operation", None)


def answer_problem(op: Operation, status: int, payload: bytes) -> str | None:
    """Why an answer does not match its declaration (None when it does)."""
    if status >= 400:
        shape = Error
    elif status in op.answers:
        shape = op.answers[status]
    else:
        return f"status {status} is not declared"
    try:
        if shape is None:
            if not payload.lstrip().startswith(b"{"):
                return "the answer is not a JSON object"
        else:
            shape.model_validate_json(payload)
    except ValidationError as err:
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}"
                         for e in err.errors(include_url=False))
    except ChatError as err:  # an id field's own rule refused it
        return err.message
    return None


def checking_answers() -> bool:
    """Answers are checked against their declarations in the test configuration."""
    return current_app.config.get("NAME") == "testing"


def check_answer(response: Response) -> Response:
    """Under the testing config, a 500 in place of an answer that breaks its declaration."""
    op = operation_of(request.endpoint)
    if (op is None or not checking_answers() or request.method == "OPTIONS"
            or response.direct_passthrough):
        return response  # OPTIONS is answered by Flask itself (an empty 200 with Allow)
    problem = (answer_problem(op, response.status_code, response.get_data())
               if response.is_json else "the answer is not JSON")
    if problem is None:
        return response
    log.error("event=answer_breaks_declaration endpoint=%s status=%s problem=%s",
              request.endpoint, response.status_code, problem)
    return current_app.response_class(
        current_app.json.dumps({"error": {
            "code": "internal_error", "message": f"the answer breaks its declaration: {problem}"}}),
        status=500, mimetype="application/json")
