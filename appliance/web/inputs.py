"""Turning what arrives over HTTP into a payload the Checker can judge.

Refusals here are the client's fault and become 4xx JSON errors (or a
message on the screen); nothing here touches the journal or the snapshot.
"""

from __future__ import annotations

import io
import threading

from PIL import Image, UnidentifiedImageError

from appliance.documents.model import MAX_PAYLOAD_BYTES

#: Largest camera frame accepted (bytes on the wire, and decoded pixels).
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
#: Raw payload content types a scanner daemon may send (read byte for byte).
RAW_TYPES = ("application/octet-stream", "text/plain")

_decoder = None
# One frame at a time: decoding is CPU-bound and the device has two cores.
_decoder_lock = threading.Lock()


class InputRefused(Exception):
    """Input refused before any verdict: an HTTP status, an error code and a reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _decode(frame: Image.Image):
    global _decoder
    from appliance.decode import ImageDecoder  # zxing/zbar: only when a frame arrives

    with _decoder_lock:
        if _decoder is None:
            _decoder = ImageDecoder()
        return _decoder.decode(frame)


def payload_from_image(data: bytes) -> bytes:
    """The first barcode payload found in an uploaded image.

    Raises InputRefused: 413 when too big, 422 when it is not an image or
    holds no barcode. A frame with no barcode is not journaled: a camera
    sends many of those.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise InputRefused(413, "too_large", f"image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
    if not data:
        raise InputRefused(400, "empty", "the image file is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InputRefused(413, "too_large",
                                   f"image is {image.width}x{image.height} pixels; at most "
                                   f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels")
            image.load()
            frame = image.copy()
    except InputRefused:
        raise
    except UnidentifiedImageError:
        raise InputRefused(422, "unreadable_image", "not an image format this appliance can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputRefused(422, "unreadable_image", f"damaged image ({exc})") from None
    from appliance.decode import DecodeError

    try:
        barcodes = _decode(frame)
    except DecodeError as exc:
        raise InputRefused(422, "unreadable_image", str(exc)) from None
    for barcode in barcodes:
        if len(barcode.payload) <= MAX_PAYLOAD_BYTES:
            return barcode.payload
    raise InputRefused(422, "no_barcode", "no barcode was found in the image; hold the document "
                                          "flat and fill the frame with its barcode")
