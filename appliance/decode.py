"""Camera frame or image file in, exact barcode payloads out.

zxing-cpp is the main decoder (PDF417, Aztec, QR, DataMatrix, 1D). zbar, through
pyzbar, is a second opinion for QR and 1D codes only: it cannot read PDF417 or
Aztec. The passes, in order (docs/decoding.md gives the measurements behind each):

1. fast: zxing-cpp on the untouched frame, without its inverted and
   quarter-turn retries. Most frames with a code end here.
2. full: zxing-cpp with its default options, i.e. everything a bare
   zxing-cpp reads.
3. otsu: zxing-cpp on the frame cut at one global (Otsu) threshold, which
   survives sensor noise that breaks zxing-cpp's local binariser.
4. skew: the frame turned level by its measured skew (:func:`estimate_skew`),
   then by any extra ``skew_angles``; each read as is, Otsu-cut and 3x3-averaged.
   zxing-cpp's PDF417 reader needs rows level to a fraction of a degree.
5. pyzbar: zbar on the untouched frame, QR and 1D only.

A pass runs only when every pass before it found nothing, so preprocessing can
add reads but never replace one. The frame becomes grayscale once
(:func:`to_gray`); every pass works on that one array.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterable

import numpy as np
import zxingcpp
from PIL import Image, ImageFilter, UnidentifiedImageError

try:  # OpenCV turns a 1280x720 frame in 1 ms, PIL in 10 ms; both give the same geometry.
    import cv2 as _cv2
except ImportError:  # pragma: no cover - exercised by forcing _cv2 = None in tests
    _cv2 = None

log = logging.getLogger(__name__)

# What documents at a counter carry: AAMVA licences and paper boarding passes
# (PDF417), mobile boarding passes (Aztec, QR, DataMatrix; IATA Resolution 792).
COUNTER_FORMATS = ("PDF417", "Aztec", "QRCode", "DataMatrix")

# Symbologies the skew pass helps: zxing-cpp's PDF417 reader needs level rows, and its
# Aztec reader missed some codes skewed 2-4 degrees that it read once levelled.
_SKEW_SENSITIVE = {"PDF417", "CompactPDF417", "MicroPDF417", "Aztec", "AztecCode"}
# Symbology names zbar reads, by our (zxing-cpp) name.
_ZBAR_NAMES = {
    "QRCode": "QRCODE",
    "Code128": "CODE128",
    "Code39": "CODE39",
    "Code93": "CODE93",
    "EAN13": "EAN13",
    "EAN8": "EAN8",
    "UPCA": "UPCA",
    "UPCE": "UPCE",
    "ITF": "I25",
    "Codabar": "CODABAR",
    "DataBar": "DATABAR",
    "DataBarExp": "DATABAR_EXP",
}
_FROM_ZBAR = {v: k for k, v in _ZBAR_NAMES.items()}
# zxing-cpp reports sub-variants; the counter only cares about the family.
_FAMILY = {"QRCodeModel1": "QRCode", "QRCodeModel2": "QRCode", "AztecCode": "Aztec"}
_ZBAR_CFG_BINARY = 4  # zbar >= 0.23: hand QR bytes over untouched instead of guessing a charset
_SKEW_MIN_DEG = 0.2  # below this the plain passes already saw the code level
_SKEW_SAME_DEG = 0.2  # a grid angle this close to one already tried adds nothing


class DecodeError(Exception):
    """An image that cannot be read at all (missing file, not an image, unsupported object)."""


@dataclass(frozen=True)
class Barcode:
    """One decoded symbol."""

    symbology: str  # stable zxing-cpp name: "PDF417", "Aztec", "QRCode", "DataMatrix", "Code128", ...
    payload: bytes  # the exact bytes of the symbol: AAMVA LF/RS/CR survive
    text: str  # the payload as plain text (zxing-cpp TextMode.Plain: control characters kept, not <LF>)
    backend: str  # "zxing-cpp" or "pyzbar"
    position: tuple[tuple[int, int], ...] | None  # corners in the input image's pixel coordinates
    rotation: float = 0.0  # degrees the skew search turned the frame to find it; 0 if found directly
    # Share of the error-correction capacity left unused (zxing-cpp's "UEC"), None where unknown.
    # 0.0 means every correction was spent: a misread is then far likelier.
    spare_ec: float | None = None


def to_gray(image) -> np.ndarray:
    """The one grayscale conversion: a C-contiguous 2-D uint8 array.

    Accepts a path (str or Path), a PIL image of any mode, or a numpy uint8
    array that is gray (H, W) or (H, W, 1), BGR (H, W, 3) or BGRA (H, W, 4).
    Colour arrays are taken as BGR, the order OpenCV captures and zxing-cpp
    expects. Luminance weights are zxing-cpp's own (0.299 R, 0.587 G, 0.114 B).
    """
    if isinstance(image, (str, Path)):
        return _gray_from_pil(_open(Path(image)))
    if isinstance(image, Image.Image):
        return _gray_from_pil(image)
    if isinstance(image, np.ndarray):
        return _gray_from_array(image)
    raise DecodeError(f"cannot decode a {type(image).__name__}: give a file path, a PIL image or a numpy array")


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except FileNotFoundError:
        raise DecodeError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DecodeError(f"{path}: is a directory, not an image") from None
    except PermissionError:
        raise DecodeError(f"{path}: permission denied") from None
    except UnidentifiedImageError:
        raise DecodeError(f"{path}: not an image format this appliance can read") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt file
        raise DecodeError(f"{path}: damaged image ({exc})") from None
    except Image.DecompressionBombError:
        raise DecodeError(f"{path}: image too large to decode safely") from None


def _gray_from_pil(image: Image.Image) -> np.ndarray:
    if image.width == 0 or image.height == 0:
        raise DecodeError("empty image (0 pixels)")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels would turn black; a barcode sits on paper, so flatten on white.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    if image.mode != "L":
        image = image.convert("L")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _gray_from_array(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise DecodeError(f"numpy image must be uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        if array.size == 0:
            raise DecodeError("empty image (0 pixels)")
        return np.ascontiguousarray(array)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise DecodeError(f"numpy image must be (H, W) gray or (H, W, 3) BGR, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DecodeError("empty image (0 pixels)")
    if array.shape[2] == 4:
        array = array[:, :, :3]
    # PIL's C converter with the weights swapped for BGR order: 10x faster than numpy.
    rgb = Image.fromarray(np.ascontiguousarray(array))
    return np.ascontiguousarray(np.asarray(rgb.convert("L", (0.114, 0.587, 0.299, 0.0))))


# --------------------------------------------------------------------------- image ops


def otsu_binarize(gray: np.ndarray) -> np.ndarray:
    """Black and white at the Otsu threshold of the whole frame.

    zxing-cpp's own local-average binariser turns sensor noise on 2-3 px
    modules into broken bars; one global threshold, chosen where the grey-level
    histogram splits best into ink and paper, does not. It fails on strong
    blur or uneven light, where the local binariser (the pass before) works.
    """
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    below = np.cumsum(hist)
    above = below[-1] - below
    level_sum = np.cumsum(hist * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (level_sum[-1] * below / below[-1] - level_sum) ** 2 / (below * above)
    threshold = int(np.nanargmax(between)) if np.isfinite(between).any() else 127
    return np.where(gray > threshold, np.uint8(255), np.uint8(0))


def box_blur(gray: np.ndarray) -> np.ndarray:
    """3x3 mean: averages away sensor noise while keeping zxing-cpp's local binariser."""
    if _cv2 is not None:
        return _cv2.blur(gray, (3, 3))
    return np.asarray(Image.fromarray(gray).filter(ImageFilter.BoxBlur(1)))


def rotation_matrix(shape: tuple[int, int], degrees: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Affine map from input to output pixels for a counter-clockwise turn that keeps every corner.

    Returns the 2x3 matrix and the output (width, height).
    """
    height, width = shape
    rad = math.radians(degrees)
    cos, sin = math.cos(rad), math.sin(rad)
    out_w = int(math.ceil(width * abs(cos) + height * abs(sin)))
    out_h = int(math.ceil(width * abs(sin) + height * abs(cos)))
    cx, cy, ox, oy = width / 2, height / 2, out_w / 2, out_h / 2
    # y grows downward, so a visual counter-clockwise turn is [[cos, sin], [-sin, cos]].
    matrix = np.array([[cos, sin, ox - cos * cx - sin * cy], [-sin, cos, oy + sin * cx - cos * cy]])
    return matrix, (out_w, out_h)


def rotate(gray: np.ndarray, degrees: float, fill: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn the frame counter-clockwise; returns the turned frame and the input-to-output matrix."""
    matrix, (out_w, out_h) = rotation_matrix(gray.shape, degrees)
    if _cv2 is not None:
        turned = _cv2.warpAffine(gray, matrix, (out_w, out_h), flags=_cv2.INTER_LINEAR, borderValue=fill)
        return turned, matrix
    inverse = _invert_affine(matrix)
    turned = Image.fromarray(gray).transform(
        (out_w, out_h), Image.AFFINE, tuple(inverse.ravel()), resample=Image.BILINEAR, fillcolor=fill
    )
    return np.asarray(turned), matrix


def _invert_affine(matrix: np.ndarray) -> np.ndarray:
    linear = matrix[:, :2]
    inverse = np.linalg.inv(linear)
    return np.hstack([inverse, -inverse @ matrix[:, 2:]])


def estimate_skew(gray: np.ndarray, *, search: float = 3.0) -> float:
    """The counter-clockwise turn, in [-45, 45) degrees, that levels the frame's main edges.

    zxing-cpp's PDF417 reader wants the rows level to within about a quarter of
    a degree, so a coarse guess is not enough. Two steps:

    1. coarse: the peak of a histogram of Scharr edge directions folded modulo
       90 degrees (bars and row boundaries of PDF417, ISO/IEC 15438 5.2-5.3, are
       the frame's densest straight edges). Good to about 2 degrees.
    2. fine: within ``search`` degrees of it, the angle at which the signed edge
       strength, projected across the bars, piles up sharpest. Every PDF417
       row repeats the start and stop patterns and starts each codeword column
       with a bar at the same place, so those edges only stack at the true angle.

    Every other row is used (a PDF417 row is at least 3 modules high).
    About 15 ms for a 1280x720 frame.
    """
    if gray.shape[0] < 8 or gray.shape[1] < 8:
        return 0.0
    g = gray.astype(np.int16)
    dx = g[:, 2:] - g[:, :-2]
    dy = g[2::2, :] - g[:-2:2, :][: (g.shape[0] - 2 + 1) // 2]
    rows = dy.shape[0]
    gx = (3 * (dx[0:-2:2][:rows] + dx[2::2][:rows]) + 10 * dx[1:-1:2][:rows]).astype(np.float32)
    gy = (3 * (dy[:, :-2] + dy[:, 2:]) + 10 * dy[:, 1:-1]).astype(np.float32)
    energy = gx * gx + gy * gy
    sample = energy.ravel()[::16]
    cut = np.partition(sample, int(sample.size * 0.9))[int(sample.size * 0.9)]
    ys, xs = np.nonzero(energy > max(cut * 0.5, 1.0))  # the top decile of edges, ties included
    if ys.size < 50:
        return 0.0
    sgx, sgy = gx[ys, xs], gy[ys, xs]
    weights = sgx * sgx + sgy * sgy
    ys = (ys * 2 + 1).astype(np.float32)
    xs = (xs + 1).astype(np.float32)

    angles = np.degrees(np.arctan2(sgy, sgx)) % 90.0
    bins = np.bincount((angles * 2).astype(np.int64) % 180, weights=weights, minlength=180)
    smooth = sum(np.roll(bins, shift) * w for shift, w in ((-2, 1), (-1, 2), (0, 3), (1, 2), (2, 1)))
    coarse = ((int(np.argmax(smooth)) + 0.5) / 2 + 45.0) % 90.0 - 45.0
    near = np.abs((angles - coarse + 45.0) % 90.0 - 45.0) < search + 1.0
    xs, ys, sgx, sgy = xs[near], ys[near], sgx[near], sgy[near]

    def sharpness(degrees: float) -> float:
        rad = math.radians(degrees)
        cos, sin = math.cos(rad), math.sin(rad)
        total = 0.0
        for ux, uy in ((cos, sin), (-sin, cos)):  # across the bars, and across the rows
            across = xs * ux + ys * uy
            profile = np.bincount((across - across.min()).astype(np.int64), weights=sgx * ux + sgy * uy)
            total += float(np.dot(profile, profile))
        return total

    best = max(np.arange(coarse - search, coarse + search + 1e-6, 0.5), key=sharpness)
    best = max(np.arange(best - 0.375, best + 0.376, 0.125), key=sharpness)
    return float((best + 45.0) % 90.0 - 45.0)


# --------------------------------------------------------------------------- pyzbar


_ZBAR_UNSET = object()
_zbar = _ZBAR_UNSET


def load_pyzbar():
    """The pyzbar modules, or None when zbar is missing (logged once, never raised)."""
    global _zbar
    if _zbar is _ZBAR_UNSET:
        try:
            from pyzbar import pyzbar, wrapper

            _zbar = (pyzbar, wrapper)
        except (ImportError, OSError) as exc:
            log.warning("pyzbar backend disabled: %s (install the zbar library, e.g. libzbar0)", exc)
            _zbar = None
    return _zbar


def _zbar_scan(gray: np.ndarray, names: Iterable[str]) -> list[tuple[str, bytes, tuple | None]]:
    """zbar over one grayscale frame, with raw QR bytes (pyzbar.decode would re-encode them as UTF-8)."""
    modules = load_pyzbar()
    if modules is None:
        return []
    _, w = modules
    from ctypes import c_void_p, cast, string_at

    height, width = gray.shape
    pixels = gray.tobytes()
    wanted = {w.ZBarSymbol[_ZBAR_NAMES[name]] for name in names}
    found = []
    scanner = w.zbar_image_scanner_create()
    try:
        # Symbology 0 addresses all of them: switch everything off, then on what was asked for.
        w.zbar_image_scanner_set_config(scanner, w.ZBarSymbol.NONE, w.ZBarConfig.CFG_ENABLE, 0)
        for symbol in wanted:
            w.zbar_image_scanner_set_config(scanner, symbol, w.ZBarConfig.CFG_ENABLE, 1)
        w.zbar_image_scanner_set_config(scanner, w.ZBarSymbol.QRCODE, _ZBAR_CFG_BINARY, 1)
        image = w.zbar_image_create()
        try:
            w.zbar_image_set_format(image, 808466521)  # fourcc 'Y800': 8-bit gray
            w.zbar_image_set_size(image, width, height)
            w.zbar_image_set_data(image, cast(pixels, c_void_p), len(pixels), None)
            if w.zbar_scan_image(scanner, image) > 0:
                symbol = w.zbar_image_first_symbol(image)
                while symbol:
                    data = string_at(w.zbar_symbol_get_data(symbol), w.zbar_symbol_get_data_length(symbol))
                    kind = w.ZBarSymbol(symbol.contents.type).name
                    points = tuple(
                        (w.zbar_symbol_get_loc_x(symbol, i), w.zbar_symbol_get_loc_y(symbol, i))
                        for i in range(w.zbar_symbol_get_loc_size(symbol))
                    )
                    found.append((_FROM_ZBAR.get(kind, kind), data, points or None))
                    symbol = w.zbar_symbol_next(symbol)
        finally:
            w.zbar_image_destroy(image)
    finally:
        w.zbar_image_scanner_destroy(scanner)
    return found


def read_with_pyzbar(gray: np.ndarray, formats: Iterable[str] = ("QRCode",)) -> list[Barcode]:
    """zbar's reading of a grayscale frame, for the formats of ``formats`` it supports.

    Returns [] when zbar is missing (see :func:`load_pyzbar`). Text is the
    payload as UTF-8, or Latin-1 where it is not valid UTF-8.
    """
    names = [name for name in formats if name in _ZBAR_NAMES]
    if not names:
        return []
    found = [Barcode(name, data, _text_of(data), "pyzbar", points, 0.0) for name, data, points in _zbar_scan(gray, names)]
    return _dedupe(found)


def _text_of(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --------------------------------------------------------------------------- decoder


class ImageDecoder:
    """Reusable decoder; configure once, call :meth:`decode` per frame.

    ``formats``: zxing-cpp format names to report (default: what counter
    documents carry). ``measure_skew``: level the frame by :func:`estimate_skew`
    before the skew pass. ``skew_angles``: extra fixed turns (degrees,
    counter-clockwise) tried after the measured one; none by default, as a
    PDF417 must be levelled to a fraction of a degree (docs/decoding.md).
    ``use_pyzbar``: let zbar have a last look at QR and 1D codes.
    """

    def __init__(
        self,
        *,
        formats: Iterable[str] = COUNTER_FORMATS,
        skew_angles: Iterable[float] = (),
        use_pyzbar: bool = True,
        measure_skew: bool = True,
    ) -> None:
        self.formats = tuple(formats)
        unknown = [name for name in self.formats if not hasattr(zxingcpp.BarcodeFormat, name)]
        if unknown or not self.formats:
            raise ValueError(f"unknown barcode format(s) {unknown}; use zxing-cpp names such as {COUNTER_FORMATS}")
        self.skew_angles = tuple(float(a) for a in skew_angles)
        self.measure_skew = measure_skew
        self._zx_formats = [getattr(zxingcpp.BarcodeFormat, name) for name in self.formats]
        skewed = [name for name in self.formats if name in _SKEW_SENSITIVE]
        self._zx_skew_formats = [getattr(zxingcpp.BarcodeFormat, name) for name in skewed]
        self._zbar_names = tuple(name for name in self.formats if name in _ZBAR_NAMES) if use_pyzbar else ()

    def decode(self, image) -> list[Barcode]:
        """All barcodes found in one image; an empty list when there is none."""
        return self.decode_gray(to_gray(image))

    def decode_gray(self, gray: np.ndarray) -> list[Barcode]:
        """The pipeline on an already converted frame (see :func:`to_gray`).

        A read that used up all its error correction (``spare_ec == 0``) does
        not end the search: Reed-Solomon at its limit can "correct" a skewed
        PDF417 into plausible garbage. Such a read is kept, and returned only
        if no later pass reads that symbology with capacity to spare.
        """
        doubtful: list[Barcode] = []
        for _, run in self._stages(gray):
            found = run()
            sure = [b for b in found if b.spare_ec != 0.0]
            doubtful += [b for b in found if b.spare_ec == 0.0]
            if sure:
                symbologies = {b.symbology for b in sure}
                return _dedupe(sure + [b for b in doubtful if b.symbology not in symbologies])
        return _dedupe(doubtful)

    def _stages(self, gray: np.ndarray):
        """(name, thunk) for every pass, in order; the pipeline stops at the first that reads."""
        yield "fast", partial(self._zxing, gray, try_rotate=False, try_invert=False)
        yield "full", partial(self._zxing, gray)
        yield "otsu", lambda: self._zxing(otsu_binarize(gray), try_invert=False)
        if self._zx_skew_formats:
            angles = []
            estimate = estimate_skew(gray) if self.measure_skew else 0.0
            for angle in (estimate, *self.skew_angles):
                if abs(angle) >= _SKEW_MIN_DEG and all(abs(angle - a) >= _SKEW_SAME_DEG for a in angles):
                    angles.append(angle)
            fill = int(gray.mean())
            for angle in angles:
                yield f"skew {angle:+.2f}", partial(self._skewed, gray, angle, fill)
        if self._zbar_names:
            yield "pyzbar", partial(read_with_pyzbar, gray, self._zbar_names)

    def _skewed(self, gray: np.ndarray, angle: float, fill: int) -> list[Barcode]:
        """The levelled frame, read as is, Otsu-cut and 3x3-averaged (three binarisation regimes)."""
        turned, matrix = rotate(gray, angle, fill)
        doubtful: list[Barcode] = []
        for prepare in (None, otsu_binarize, box_blur):
            frame = prepare(turned) if prepare else turned
            found = self._zxing(
                frame, formats=self._zx_skew_formats, matrix=matrix, rotation=round(angle, 2), try_invert=False
            )
            if any(b.spare_ec != 0.0 for b in found):
                return found + doubtful
            doubtful += found
        return doubtful

    def _zxing(self, gray: np.ndarray, *, formats=None, matrix=None, rotation=0.0, **options) -> list[Barcode]:
        results = zxingcpp.read_barcodes(
            gray, formats=formats or self._zx_formats, text_mode=zxingcpp.TextMode.Plain, **options
        )
        barcodes = []
        for result in results:
            name = result.format.name
            position = _corners(result.position, matrix)
            spare = (result.extra or {}).get("UEC")
            barcodes.append(
                Barcode(
                    _FAMILY.get(name, name),
                    bytes(result.bytes),
                    result.text,
                    "zxing-cpp",
                    position,
                    rotation,
                    None if spare is None else float(spare),
                )
            )
        return _dedupe(barcodes)


def _corners(position, matrix: np.ndarray | None) -> tuple[tuple[int, int], ...] | None:
    if position is None:
        return None
    points = [position.top_left, position.top_right, position.bottom_right, position.bottom_left]
    coords = np.array([[p.x, p.y] for p in points], dtype=np.float64)
    if matrix is not None:  # back from the turned frame to the caller's frame
        inverse = _invert_affine(matrix)
        coords = coords @ inverse[:, :2].T + inverse[:, 2]
    return tuple((int(round(x)), int(round(y))) for x, y in coords)


def _dedupe(barcodes: list[Barcode]) -> list[Barcode]:
    """One entry per (symbology, payload): the first backend/pass to read it wins."""
    seen: set[tuple[str, bytes]] = set()
    unique = []
    for barcode in barcodes:
        key = (barcode.symbology, barcode.payload)
        if key not in seen:
            seen.add(key)
            unique.append(barcode)
    return unique


def decode_image(image, **options) -> list[Barcode]:
    """One-shot helper: ``ImageDecoder(**options).decode(image)``."""
    return ImageDecoder(**options).decode(image)
