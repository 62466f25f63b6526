"""Request bodies to images: size-limited, sniffed, decoded in memory (nothing touches disk).

An image arrives as the raw body (``Content-Type: image/jpeg|png|webp`` or
``application/octet-stream``) or as the file part of a ``multipart/form-data`` form.
Each failure is an :class:`UploadError` carrying the HTTP status and a message.
"""
from __future__ import annotations

from collections.abc import AsyncIterable

import numpy as np

from mobilefer.errors import MobileferError


from mobilefer.data.images import ImageDecodeError, ImageTooLargeError, UnsupportedImageError, decode_image, rgb_to_bgr

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
RAW_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png", "image/webp", "image/bmp", "image/x-ms-bmp",
                       "application/octet-stream"})
# What a body starts with when it is an accepted image, whatever its Content-Type says: curl's
# --data-binary sends application/x-www-form-urlencoded unless told otherwise.
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM")
WHAT_TO_SEND = "send a JPEG, PNG, WebP or BMP image as the raw body or as a multipart/form-data file"


class UploadError(MobileferError):
    """An upload the service refuses: ``status`` is the HTTP status, ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def read_body(chunks: AsyncIterable[bytes], content_length: str | None, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to pass ``limit`` bytes."""
    too_big = UploadError(413, f"upload larger than the limit of {limit / 2**20:g} MiB")
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise UploadError(400, f"bad Content-Length header {content_length!r}") from None
        if declared > limit:
            raise too_big
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


def _multipart_file(body: bytes, content_type: str) -> bytes:
    """The first file part of a multipart/form-data body (a part with a filename, else one named image/file)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart/form-data without a boundary")
    parts: list[dict] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}

    def begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def header_end() -> None:
        parts[-1]["headers"][bytes(header["field"]).decode("latin-1").lower()] = bytes(header["value"])
        header["field"].clear()
        header["value"].clear()

    callbacks = {
        "on_part_begin": begin,
        "on_header_field": lambda data, start, end: header["field"].extend(data[start:end]),
        "on_header_value": lambda data, start, end: header["value"].extend(data[start:end]),
        "on_header_end": header_end,
        "on_part_data": lambda data, start, end: parts[-1]["data"].extend(data[start:end]),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises its own error types for malformed forms
        raise UploadError(400, f"malformed multipart/form-data body ({exc})") from None
    files: list[bytes] = []
    named: list[bytes] = []
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get("content-disposition", b""))
        if b"filename" in disposition:
            files.append(bytes(part["data"]))
        elif disposition.get(b"name") in (b"image", b"file"):
            named.append(bytes(part["data"]))
    found = files or named
    if len(found) > 1:
        raise UploadError(422, f"the form has {len(found)} files; send one image per request")
    if found:
        return found[0]
    raise UploadError(422, f"the form has no file part: {WHAT_TO_SEND}")


def image_bytes(body: bytes, content_type: str | None) -> bytes:
    """The encoded image inside a request body, by its Content-Type."""
    media = (content_type or "application/octet-stream").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        data = _multipart_file(body, content_type or "")
    elif media in RAW_TYPES or _is_image(body):
        data = body
    else:
        raise UploadError(415, f"unsupported Content-Type {media!r}: {WHAT_TO_SEND}")
    if not data:
        raise UploadError(422, f"empty image: {WHAT_TO_SEND}")
    return data


def _is_image(body: bytes) -> bool:
    return body.startswith(MAGIC) or (body[:4] == b"RIFF" and body[8:12] == b"WEBP")


def decode_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """Encoded JPEG/PNG/WebP -> uint8 (H, W, 3) BGR, the recognizer's frame convention, within the pixel cap."""
    try:
        return rgb_to_bgr(decode_image(data, "upload", formats=ACCEPTED_FORMATS, max_pixels=max_pixels))
    except UnsupportedImageError as exc:
        raise UploadError(415, f"{exc}: {WHAT_TO_SEND}") from None
    except ImageTooLargeError as exc:
        raise UploadError(413, str(exc)) from None
    except ImageDecodeError as exc:
        raise UploadError(422, str(exc)) from None
