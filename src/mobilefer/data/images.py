"""Decoding images of any common kind into uint8 arrays with a chosen channel count.

Arrays here are uint8, (H, W) for gray or (H, W, 3) RGB, unless a name says BGR.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mobilefer.errors import ImageDecodeError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm"})

# ITU-R BT.601 luma, as PIL and OpenCV use; one implementation so gray is gray everywhere.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

Image.MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs well before memory runs out
# A baseline JPEG spends at least about a bit on each 8x8 block even of a flat picture (measured:
# 255 pixels a byte for flat gray at quality 1): a file claiming far more pixels per byte is cut
# short or has a lying header, and the decoder would fill the missing picture with gray.
JPEG_MAX_PIXELS_PER_BYTE = 400


class UnsupportedImageError(ImageDecodeError):
    """The bytes are not an image of an accepted format."""


class ImageTooLargeError(ImageDecodeError):
    """The image has more pixels than allowed (a decompression bomb, or just too big)."""


class ImageInputError(ImageDecodeError):
    """An in-memory image (array, PIL image, bytes) that is not one: wrong type, shape or pixel values."""


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def to_uint8(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """Pixel values of any numeric dtype -> uint8, as image files of that depth are read:
    integers up to 255 as they are, up to 65535 scaled from 16 bits; floats in [0, 1] scaled
    by 255, floats up to 255 rounded. Anything else is ImageInputError naming ``name``."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageInputError(f"{name}: pixel type {arr.dtype} is not an image's; expected uint8, uint16 or "
                              "float in [0, 1]")
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        raise ImageInputError(f"{name}: the pixels include NaN or infinity")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low < 0:
        raise ImageInputError(f"{name}: negative pixel values ({low:g}); expected uint8, uint16, or float in [0, 1]")
    if np.issubdtype(arr.dtype, np.floating):
        if high <= 1.0:
            values = values * 255.0
        elif high > 255.0:
            raise ImageInputError(f"{name}: float pixels up to {high:g}; expected floats in [0, 1] (or 0-255)")
    elif high > 65535:
        raise ImageInputError(f"{name}: pixel values up to {high:g}; expected 8 or 16-bit values")
    elif high > 255:
        values = values * (255.0 / 65535.0)
    return np.clip(values + 0.5, 0, 255).astype(np.uint8)


def pil_to_array(img: Image.Image) -> np.ndarray:
    """PIL image of any mode -> uint8 (H, W) gray or (H, W, 3) RGB; alpha dropped on black."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return to_uint8(np.asarray(img))
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if img.mode in ("LA", "RGBA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_image(data: bytes, name: str = "<bytes>", *, formats: tuple[str, ...] | None = None,
                 max_pixels: int | None = None) -> np.ndarray:
    """Decode encoded image bytes (PNG/JPEG/BMP/WebP/...) into a uint8 array (see module doc).

    EXIF orientation is applied, so boxes match the picture as viewers show it. ``formats``
    (PIL names, e.g. ("JPEG", "PNG")) restricts what is accepted; ``max_pixels`` is checked
    from the header, before any pixel is decoded.
    """
    try:
        img = Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        accepted = f"expected {', '.join(formats)}" if formats else "unknown format"
        raise UnsupportedImageError(f"{name}: not an image ({accepted})") from None
    except Image.DecompressionBombError as exc:
        # Pillow's message quotes its own limit; say ours, with the image's size where Pillow gives it
        limit = max_pixels or Image.MAX_IMAGE_PIXELS
        size = re.search(r"\((\d+) pixels\)", str(exc))
        what = f"{size.group(1)} pixels" if size else "more pixels than that"
        raise ImageTooLargeError(f"{name}: {what} is over the limit of {limit / 1e6:g} megapixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{name}: cannot decode image ({exc})") from None
    with img:
        width, height = img.size
        if max_pixels and width * height > max_pixels:
            raise ImageTooLargeError(f"{name}: {width}x{height} pixels is over the limit of "
                                     f"{max_pixels / 1e6:g} megapixels")
        if img.format == "JPEG" and width * height > JPEG_MAX_PIXELS_PER_BYTE * len(data):
            raise ImageDecodeError(f"{name}: a JPEG of {width}x{height} pixels in only {len(data)} bytes: the file "
                                   "is cut short or its header is wrong")
        try:
            img.load()
            return pil_to_array(ImageOps.exif_transpose(img))
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageDecodeError(f"{name}: cannot decode image ({exc})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file into a uint8 array; ImageDecodeError names the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return decode_image(data, str(path))


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) RGB -> uint8 (H, W, channels)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == channels:
        return img
    if channels == 3:
        return np.repeat(img[:, :, :1], 3, axis=2)
    gray = img[:, :, :3].astype(np.float32) @ _LUMA
    return np.clip(gray + 0.5, 0, 255).astype(np.uint8)[:, :, None]


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV frame, uint8 (H, W, 3) BGR or (H, W) gray or (H, W, 4) BGRA -> RGB or gray."""
    if frame.ndim == 2:
        return frame
    if frame.shape[2] == 4:
        frame = frame[:, :, :3]
    return np.ascontiguousarray(frame[:, :, ::-1])


def is_gray(img: np.ndarray) -> bool:
    """True for a single-channel image or an RGB one whose channels are equal."""
    if img.ndim == 2 or img.shape[2] == 1:
        return True
    return bool(np.array_equal(img[:, :, 0], img[:, :, 1]) and np.array_equal(img[:, :, 1], img[:, :, 2]))


def rgb_to_bgr(img: np.ndarray) -> np.ndarray:
    """uint8 gray (H, W) or RGB (H, W, 3) -> BGR (H, W, 3)."""
    if img.ndim == 2 or img.shape[2] == 1:
        return np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    return np.ascontiguousarray(img[:, :, ::-1])


def as_bgr_frame(image: object) -> np.ndarray:
    """What the Python API accepts as one image -> uint8 (H, W, 3) BGR.

    A path, encoded bytes (JPEG, PNG, ...), a PIL image (EXIF rotation applied, as for a
    file), or an array: (H, W) gray or (H, W, 3|4) BGR(A), uint8, uint16 or float in [0, 1].
    Anything else is ImageInputError saying what was expected.
    """
    if isinstance(image, (str, Path)):
        return rgb_to_bgr(read_image(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        if not len(image):
            raise ImageInputError("image bytes: empty")
        return rgb_to_bgr(decode_image(bytes(image), "image bytes"))
    if isinstance(image, Image.Image):
        try:
            return rgb_to_bgr(pil_to_array(ImageOps.exif_transpose(image)))
        except (OSError, ValueError) as exc:
            raise ImageInputError(f"PIL image: cannot be read ({exc})") from None
    if not isinstance(image, np.ndarray):
        raise ImageInputError(f"expected an image path, bytes, a PIL image or a numpy array, got "
                              f"{type(image).__name__}")
    arr = image
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageInputError(f"array of shape {arr.shape}: expected (H, W) gray or (H, W, 3) BGR")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageInputError(f"array of shape {arr.shape}: the image is empty")
    arr = to_uint8(arr, f"array of {arr.dtype}")
    return rgb_to_bgr(arr) if arr.ndim == 2 else np.ascontiguousarray(arr[:, :, :3])


def shrink(frame: np.ndarray, width: int, height: int | None = None) -> np.ndarray:
    """A small copy of ``frame``, ``width`` px wide (``height`` too, if given), averaged over its
    pixels (INTER_AREA) after skipping rows and columns down to twice that size: an HD frame's
    thumbnail costs what a 640 px frame's does."""
    import cv2

    step = max(1, frame.shape[1] // (2 * width))
    if step > 1:
        frame = frame[::step, ::step]
    if height is None:
        height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
