"""Pictures: recognise them by their bytes, then decode, clean and re-encode them.

Re-encoding keeps only the pixels (and what drawing them needs: transparency,
frame timing, colour profile), so location and camera metadata never reach
another user; a file that claims to be a picture but does not decode is refused.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000
THUMB_SIZE = (320, 320)
MAX_FRAMES = 1000
# Every frame of an animation is decoded and encoded again: a cap on their pixels together,
# so that one small GIF of a thousand big frames cannot hold a picture thread for minutes.
MAX_ANIMATION_PIXELS = 4 * MAX_PIXELS
# Pillow refuses (DecompressionBombError) past twice this, and warns past it: the
# decoder never allocates a huge canvas before our own check below.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# Magic bytes of the pictures we keep; everything else is a plain file.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
EXTENSION = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp"}
# What drawing the picture needs; every other info key (exif, xmp, comments...) is dropped.
_KEEP = ("transparency", "duration", "loop", "background", "icc_profile")


class NotAPicture(Exception):
    """The bytes start like a picture but do not decode (or are too big to)."""


@dataclass
class Cleaned:
    """A re-encoded picture and its thumbnail, as files on disk."""

    format: str
    width: int
    height: int
    thumb_mime: str


def sniff(head: bytes) -> str | None:
    """The picture format the first bytes announce (PNG, JPEG, GIF, WEBP), else None."""
    for magic, fmt in _SIGNATURES:
        if head.startswith(magic):
            return fmt
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def clean(source: str, fmt: str, target: str, thumb: str) -> Cleaned:
    """Decode ``source``, write it re-encoded to ``target`` and a thumbnail to ``thumb``.

    Runs in a worker thread (CPU-heavy). Raises NotAPicture.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=[fmt]) as img:
                return _clean(img, fmt, target, thumb)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise NotAPicture("too many pixels") from err
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        raise NotAPicture(str(err)) from err


def _count_frames(img: Image.Image) -> int:
    """How many frames, refusing too many pixels in one or in all together (NotAPicture).

    Each frame's size is read after seeking to it: a GIF's canvas grows when a later
    frame reaches past the size its header gave, so the first frame's size says nothing
    of the rest. Stops at the cap instead of scanning a file of a million tiny frames.
    """
    frames = total = 0
    while True:
        width, height = img.size
        total += width * height
        frames += 1
        if width * height > MAX_PIXELS or total > MAX_ANIMATION_PIXELS or frames > MAX_FRAMES:
            raise NotAPicture("too many pixels")
        try:
            img.seek(frames)
        except EOFError:
            break
    if frames > 1:
        img.seek(0)
    return frames


def _clean(img: Image.Image, fmt: str, target: str, thumb: str) -> Cleaned:
    frames = _count_frames(img)
    width, height = img.size
    keep = {k: img.info[k] for k in _KEEP if img.info.get(k) is not None}
    if frames > 1:
        img.load()
        _save(img, fmt, target, keep, save_all=True)
        first = img.copy()
    else:
        # Turn the pixels as the camera meant, since the orientation tag goes with the rest.
        upright = ImageOps.exif_transpose(img)
        upright.load()
        width, height = upright.size
        _save(upright, fmt, target, keep)
        first = upright
    return Cleaned(fmt, width, height, _thumbnail(first, thumb))


def _save(img: Image.Image, fmt: str, target: str, keep: dict, **extra) -> None:
    img.info = {}  # nothing from the original's metadata rides along
    if fmt == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
        img = img.convert("RGB")
    options = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "GIF":
        keep.pop("icc_profile", None)
    if fmt == "JPEG":
        keep = {k: v for k, v in keep.items() if k == "icc_profile"}
    img.save(target, format=fmt, **keep, **options, **extra)


def _thumbnail(img: Image.Image, thumb: str) -> str:
    small = img.copy()
    small.thumbnail(THUMB_SIZE)
    small.info = {}
    if small.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
        small = small.convert("RGBA")
        small.save(thumb, format="PNG")
        return "image/png"
    small.convert("RGB").save(thumb, format="JPEG", quality=85)
    return "image/jpeg"
