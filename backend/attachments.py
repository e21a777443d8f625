"""Checks on an uploaded attachment (PUT /v1/attachments/{sha256}): the bytes are what their name, their type
and their first bytes say, and they decode as an image of sane size.

The kiosk sends document and face photos as JPEG (at most 1600 px on the long side) and signatures as PNG, all
at most 300 KB. A small file can still claim a huge image (a decompression bomb), so the dimensions are checked
from the header before any pixel is decoded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image

MAX_ATTACHMENT = 307_200  # bytes (300 KB), docs/filings.md
MAX_SIDE = 4096  # px: far above what the kiosk sends, far below what a bomb claims
MAX_PIXELS = 4096 * 4096
MEDIA_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}  # media type -> Pillow format
_MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}


@dataclass
class AttachmentProblem(Exception):
    loc: tuple[str, ...]
    kind: str
    message: str


def check_image(sha256: str, content_type: str | None, data: bytes) -> str:
    """The media type of acceptable bytes, else AttachmentProblem (where, what, words for the error body)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise AttachmentProblem(("header", "Content-Type"), "media_type", "附件只能是 JPEG 或 PNG 图片")
    if len(data) > MAX_ATTACHMENT:  # the body guard stops it first; kept for callers without the guard
        raise AttachmentProblem(("body",), "too_large", "附件过大（上限 300 KB）")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise AttachmentProblem(("path", "sha256"), "digest_mismatch", "附件内容与编号不符，请重新上传")
    if not data.startswith(_MAGIC[media]):
        raise AttachmentProblem(("body",), "magic_mismatch", "附件内容不是所说的图片类型")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[MEDIA_TYPES[media]]) as img:
                w, h = img.size
                if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE and w * h <= MAX_PIXELS):
                    raise AttachmentProblem(("body",), "image_size", "图片尺寸不合适")
                img.load()  # decode every pixel: a truncated or corrupt file fails here
    except AttachmentProblem:
        raise
    except Exception:  # Pillow raises many types for bad input (OSError, SyntaxError, ValueError, bombs...)
        raise AttachmentProblem(("body",), "undecodable", "图片无法打开，请重新拍摄") from None
    return media


__all__ = ["MAX_ATTACHMENT", "MEDIA_TYPES", "AttachmentProblem", "check_image"]
