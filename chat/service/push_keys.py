"""Web Push's server side pieces: the VAPID key pair (RFC 8292) and which endpoints may be
posted to (no request forgery towards the server's own network)."""
from __future__ import annotations

import base64
import ipaddress
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid

from ..errors import BadRequest
from .i18n import N_

log = logging.getLogger("chat.push")

ENDPOINT_MAX = 2000


def load_vapid(secret: str | None, keep_in: Path) -> Vapid:
    """The VAPID key: from ``secret`` (PEM, or base64url of the raw or DER private key),
    else the one generated once and kept in ``keep_in`` (the development server's)."""
    if secret:
        text = secret.strip()
        if text.startswith("-----BEGIN"):
            return Vapid.from_pem(text.encode())
        return Vapid.from_string(private_key=text)
    path = keep_in / "vapid_private.pem"
    if not path.exists():
        keep_in.mkdir(parents=True, exist_ok=True)
        key = Vapid()
        key.generate_keys()
        try:  # several processes may start at once: the first one's key wins
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key.private_pem())
            log.warning("event=vapid_key_generated path=%s (set CHAT_VAPID_PRIVATE_KEY in "
                        "production)", path)
        except FileExistsError:
            pass
    return Vapid.from_pem(path.read_bytes())


def public_key_b64(key: Vapid) -> str:
    """The application server key a browser subscribes with: the uncompressed P-256 point,
    base64url without padding."""
    raw = key.public_key.public_bytes(serialization.Encoding.X962,
                                      serialization.PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _address_allowed(address: str, local_test: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if local_test and ip.is_loopback:
        return True
    return ip.is_global


def endpoint_problem(url: str, testing: bool) -> str | None:
    """Why the server must not post to ``url`` (None: it may). https only, to a public
    address; the test configuration also allows ``http://127.0.0.1``."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return N_("the endpoint is not a valid URL")
    if not host or parts.username or parts.password:
        return N_("the endpoint is not a valid URL")
    local_test = testing and parts.scheme == "http" and host == "127.0.0.1"
    if parts.scheme != "https" and not local_test:
        return N_("the endpoint must be an https URL")
    try:
        found = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return N_("the endpoint's host does not resolve")
    if not found or not all(_address_allowed(info[4][0], local_test) for info in found):
        return N_("the endpoint's host is not a public address")
    return None


def check_endpoint(url: object, testing: bool) -> str:
    """A push endpoint the server may post to; 400 otherwise."""
    if type(url) is not str or not url or len(url) > ENDPOINT_MAX:
        raise BadRequest(N_("endpoint must be a URL of at most 2000 characters"))
    problem = endpoint_problem(url, testing)
    if problem is not None:
        raise BadRequest(problem)
    return url


def check_key(value: object, field: str, size: int) -> str:
    """A subscription key: base64url (padding optional) of exactly ``size`` bytes; 400
    otherwise."""
    if type(value) is not str or len(value) > 200:
        raise BadRequest(f"{field} must be a base64url string")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise BadRequest(f"{field} must be a base64url string") from None
    if len(raw) != size:
        raise BadRequest(f"{field} must hold {size} bytes")
    return value
