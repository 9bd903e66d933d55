"""Request guards and response headers: CSRF on session writes, CSP and friends."""
from __future__ import annotations

from flask import Flask, request

from .identity import check_csrf, check_flood


def content_security_policy() -> str:
    """No inline script, no plugins, no framing; the WebSocket origin named in connect-src."""
    ws_scheme = "wss" if request.scheme == "https" else "ws"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
            f"connect-src 'self' {ws_scheme}://{request.host}; font-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def register_security(app: Flask) -> None:
    """Install the CSRF guard and the security headers."""
    # The flood limit comes first of all (docs/protocol.md 3.4), then CSRF.
    app.before_request(check_flood)
    app.before_request(check_csrf)

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", content_security_policy())
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")
        return response
