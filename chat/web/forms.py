"""Forms: the one way a refused form is answered, and where "back" may go.

A service refusal in a form view (a ChatError the form caused: 400, 401, 403,
404, 409, 429) is flashed in the reader's language and the form is shown again:
re-rendered with what was typed (``template``), or the page it was sent from
(``fallback``, with the referrer checked). Server trouble (503) goes to the
error page, whose text says what to do.
"""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for

from ..errors import ChatError
from .i18n import translate

# Fallback endpoints that need the view's URL arguments.
_ENDPOINT_ARGS = {"groups.show": ("group_id",), "pages.profile": ("user_id",)}


def back_to(fallback: str) -> str:
    """Where a form came from (a path on this site), else ``fallback``."""
    parts = urlsplit(request.referrer or "")
    if parts.netloc and parts.netloc != request.host:
        return fallback
    path = parts.path or ""
    if not path.startswith("/") or path.startswith(("//", "/\\")):  # "/\\x" is "//x" to browsers
        return fallback
    return path + (f"?{parts.query}" if parts.query else "")


def form_view(*, fallback: str | None = None, template: str | None = None,
              fields: tuple[str, ...] = ()):
    """Decorate a view that handles a form's POST (see the module's docstring)."""
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except ChatError as err:
                if err.status >= 500:
                    raise
                flash(translate(err.message), "error")
                if template is not None:
                    form = {name: request.form.get(name, "") for name in fields}
                    return render_template(template, form=form), err.status
                wanted = {k: kwargs[k] for k in _ENDPOINT_ARGS.get(fallback, ()) if k in kwargs}
                return redirect(back_to(url_for(fallback, **wanted)))
        return wrapper
    return decorate
