"""Turning what arrives over HTTP into a payload the Checker can judge.

Refusals here are the client's fault and become 4xx JSON errors (or a
message on the screen); nothing here touches the journal or the snapshot.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import io
from typing import BinaryIO, Callable

from flask import current_app, request
from PIL import Image, UnidentifiedImageError

from appliance.documents.model import MAX_PAYLOAD_BYTES

#: Largest camera frame accepted (bytes on the wire, and decoded pixels).
MAX_IMAGE_BYTES = 8 * 1024 * 1024
#: 1920x1080 fits: what a counter camera sends (the decoder is tuned for
#: 1280x720). The decoder's worst case, a frame with no code in which every
#: pass runs, peaks at 25-30 bytes a pixel; at this limit the server stays
#: at 140 MB beside 50 M tokens, under its 150 MB target. A 3.1 MP frame took
#: it to 156 MB (docs/benchmarks.md, "Serving memory with camera frames").
MAX_IMAGE_PIXELS = 2_100_000
#: Colour modes with no transparency: converted to gray as soon as they are read.
_OPAQUE_COLOUR = ("RGB", "YCbCr", "CMYK")
#: Raw payload content types a scanner daemon may send (read byte for byte).
RAW_TYPES = ("application/octet-stream", "text/plain")
#: A request body on a route that takes a camera frame: the frame plus the
#: multipart framing and a CSRF token.
MAX_UPLOAD_BODY = MAX_IMAGE_BYTES + 64 * 1024
#: Every other request body (sign-in, manual entry, the flag form), and each
#: text field of any form.
MAX_FORM_BODY = 64 * 1024
#: An upload form has an image and a CSRF token; a few spare parts, not Werkzeug's 1000.
MAX_UPLOAD_PARTS = 8

_decoder = None
# Every frame is read and decoded on this one thread, one at a time: decoding
# is CPU-bound on a two-core device, and a frame's pixels are the server's
# largest allocation. On one thread they come from one malloc arena and are
# given back after each frame (_one_frame); spread over the server's 16
# threads, each thread's arena kept its own high-water mark and the process
# grew past 300 MB (docs/benchmarks.md, "Serving memory with camera frames").
_frames = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-decoder")


_M_MMAP_THRESHOLD = -3  # mallopt parameter, malloc.h
#: glibc once the first frame has set it up; False where there is none.
_libc: ctypes.CDLL | bool | None = None


def _glibc() -> ctypes.CDLL | bool:
    """glibc, told to mmap every large block, so a frame's memory goes back to the OS.

    Process-wide, and done on the first frame: only a server that decodes
    frames changes how it allocates. False where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return False
    if libc is None or not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return False
    # A fixed threshold: glibc otherwise raises it to the size of each large
    # block freed, so the next frame's arrays come from the heap and stay mapped.
    libc.mallopt(_M_MMAP_THRESHOLD, 1024 * 1024)
    return libc


class InputRefused(Exception):
    """Input refused before any verdict: an HTTP status, an error code and a reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def accepts_image(view: Callable) -> Callable:
    """Mark a view that takes a camera frame: upload_limits() gives it the 8 MiB body."""
    view.accepts_image = True  # type: ignore[attr-defined]
    return view


def upload_limits() -> None:
    """Raise the body limits for an image upload route, before anything parses the body.

    Registered as the app's first ``before_request`` hook, since CSRF
    protection reads the form before the view runs. Werkzeug 3.1 applies
    ``max_form_memory_size`` to the multipart parser's buffer of *file*
    parts too: a 64 KiB read plus the few bytes held back when a chunk ends
    in a CR or LF. A 64 KiB limit therefore refused most frames over a few
    hundred KB with 413. On these routes the form memory limit is the body
    cap, which bounds memory anyway; every other route keeps 64 KiB for both.
    """
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "accepts_image", False):
        request.max_content_length = MAX_UPLOAD_BODY
        request.max_form_memory_size = MAX_UPLOAD_BODY
        request.max_form_parts = MAX_UPLOAD_PARTS


def payload_from_upload(upload: BinaryIO) -> bytes:
    """The first barcode payload found in an uploaded image.

    Raises InputRefused: 413 when too big, 422 when it is not an image or
    holds no barcode. A frame with no barcode is not journaled: a camera
    sends many of those. The file is read only once this frame's turn has
    come, so uploads waiting for the decoder hold no more than their bytes
    on disk.
    """
    return _frames.submit(_one_frame, lambda: upload.read(MAX_IMAGE_BYTES + 1)).result()


def _one_frame(read: Callable[[], bytes]) -> bytes:
    """On the frame-decoder thread: read, decode, then give the memory back."""
    global _libc
    if _libc is None:
        _libc = _glibc()
    try:
        return _payload(read())
    finally:
        if _libc:
            _libc.malloc_trim(0)  # type: ignore[union-attr]


def _payload(data: bytes) -> bytes:
    if len(data) > MAX_IMAGE_BYTES:
        raise InputRefused(413, "too_large", f"image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
    if not data:
        raise InputRefused(400, "empty", "the image file is empty")
    from appliance.decode import DecodeError, ImageDecoder

    global _decoder
    try:
        gray = _gray_frame(data)
        if _decoder is None:
            _decoder = ImageDecoder()
        barcodes = _decoder.decode(gray)
    except DecodeError as exc:
        raise InputRefused(422, "unreadable_image", str(exc)) from None
    for barcode in barcodes:
        if len(barcode.payload) <= MAX_PAYLOAD_BYTES:
            return barcode.payload
    raise InputRefused(422, "no_barcode", "no barcode was found in the image; hold the document "
                                          "flat and fill the frame with its barcode")


def _gray_frame(data: bytes):
    """The image's pixels as one gray array, the only form the decoder reads.

    A JPEG is decoded straight to its luma channel (the same 0.299/0.587/0.114
    weights as the decoder's own conversion), so its colour pixels never
    exist in memory; other formats are converted and their colour copy freed.
    """
    from appliance.decode import to_gray

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InputRefused(413, "too_large",
                                   f"image is {image.width}x{image.height} pixels; at most "
                                   f"{MAX_IMAGE_PIXELS / 1_000_000:g} megapixels")
            if image.format == "JPEG":
                image.draft("L", image.size)
            image.load()
            if image.mode not in _OPAQUE_COLOUR:
                return to_gray(image)  # gray already, or palette or alpha: the decoder's own rules
            luma = image.convert("L")
        return to_gray(luma)  # the colour pixels are freed by now
    except InputRefused:
        raise
    except UnidentifiedImageError:
        raise InputRefused(422, "unreadable_image", "not an image format this appliance can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputRefused(422, "unreadable_image", f"damaged image ({exc})") from None
