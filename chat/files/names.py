"""File names: what we keep of the one a user gave, and how a download names it."""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

MAX_NAME = 200
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


def sanitize(raw: str | None) -> str:
    """A file name without folders, control or path characters, dots at its ends, or bulk."""
    name = unicodedata.normalize("NFC", raw or "")
    # Some browsers send the whole client-side path: keep its last part.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    name = _UNSAFE.sub("_", name).strip().strip(".").strip()
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:MAX_NAME - len(ext) - 1] + "." + ext) if dot and len(ext) <= 16 \
            else name[:MAX_NAME]
    return name or "file"


def disposition(kind: str, name: str) -> str:
    """RFC 6266 Content-Disposition: the UTF-8 name, with an ASCII one for old clients."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", ascii_name).strip() or "file"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
