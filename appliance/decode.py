"""Camera frame or image file in, exact barcode payloads out.

zxing-cpp is the main decoder (PDF417, Aztec, QR, DataMatrix, 1D). zbar, through
pyzbar, is a second opinion for QR and 1D codes only: it cannot read PDF417 or
Aztec. docs/decoding.md gives the measurements behind each step.

First :func:`find_code_region` (~2 ms at 1280x720) finds the part of the frame dense
with edges the way a code is. A frame with none gets one pass, "net": zxing-cpp
on the whole frame, 2-D formats, without its inverted and quarter-turn retries.
Otherwise every pass reads that region only, in this order:

1. fast: zxing-cpp on the untouched region, 2-D formats, without its inverted
   and quarter-turn retries. If the region's edges are tilted
   (:func:`estimate_skew`), first "level": the region turned level, read as
   is, Otsu-cut and 3x3-averaged, PDF417 and Aztec only (zxing-cpp's PDF417
   reader needs rows level to a fraction of a degree, and fails slowly,
   40-80 ms, on a tilted code); then "fast" for QR and DataMatrix only.
2. fast 1D: the same for 1D formats; then, if tilted, 1D on the levelled region.
3. full: zxing-cpp with its default options: what a bare zxing-cpp reads.
4. otsu: the region cut at one global (Otsu) threshold, which survives sensor
   noise that breaks zxing-cpp's local binariser.
5. skew: any extra ``skew_angles``, read like the levelled region.
6. pyzbar: zbar on the untouched region, QR and 1D only.

A pass runs only when every pass before it found nothing (or only reads that
spent all their error correction, see :meth:`ImageDecoder.decode_gray`). The
frame becomes grayscale once (:func:`to_gray`); every pass works on that array.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Iterable

import numpy as np
import zxingcpp
from PIL import Image, ImageFilter, UnidentifiedImageError

from appliance.code_region import find_code_region
from appliance.skew import compose, estimate_skew, invert_affine, rotate, translation

try:  # OpenCV's 3x3 mean is ~5x Pillow's; both give the same result.
    import cv2 as _cv2
except ImportError:  # pragma: no cover - exercised by forcing _cv2 = None in tests
    _cv2 = None

log = logging.getLogger(__name__)

# What documents at a counter carry: AAMVA licences and paper boarding passes
# (PDF417), mobile boarding passes (Aztec, QR, DataMatrix; IATA Resolution 792).
# Their 1D codes: Code 128 and Code 39 (boarding passes, bag tags, the back of
# older licences), Interleaved 2 of 5, Codabar, Code 93, and EAN/UPC.
MATRIX_FORMATS = ("PDF417", "Aztec", "QRCode", "DataMatrix")
LINEAR_FORMATS = ("Code128", "Code39", "Code93", "Codabar", "EAN13", "EAN8", "UPCA", "UPCE")
COUNTER_FORMATS = MATRIX_FORMATS + LINEAR_FORMATS
_LINEAR = {f.name for f in zxingcpp.barcode_formats_list(zxingcpp.BarcodeFormat.AllLinear)} | {"AllLinear"}

# Symbologies the levelled pass reads: zxing-cpp's PDF417 reader needs level rows, and
# its Aztec reader missed some codes skewed 2-4 degrees that it read once levelled.
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
    rotation: float = 0.0  # degrees the level pass turned the region to read it; 0 if read untouched
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
    documents carry, 2-D and 1-D). ``measure_skew``: level a tilted code by
    :func:`estimate_skew` before reading it. ``skew_angles``: extra fixed turns
    (degrees, counter-clockwise) tried after the plain passes; none by default,
    as a PDF417 must be levelled to a fraction of a degree (docs/decoding.md).
    ``use_pyzbar``: let zbar have a last look at QR and 1D codes.
    ``find_region``: read only the part of the frame with a code's density of
    edges (:func:`find_code_region`); off, every pass reads the whole frame.
    """

    def __init__(
        self,
        *,
        formats: Iterable[str] = COUNTER_FORMATS,
        skew_angles: Iterable[float] = (),
        use_pyzbar: bool = True,
        measure_skew: bool = True,
        find_region: bool = True,
    ) -> None:
        self.formats = tuple(formats)
        unknown = [name for name in self.formats if not hasattr(zxingcpp.BarcodeFormat, name)]
        if unknown or not self.formats:
            raise ValueError(f"unknown barcode format(s) {unknown}; use zxing-cpp names such as {COUNTER_FORMATS}")
        self.skew_angles = tuple(float(a) for a in skew_angles)
        self.measure_skew = measure_skew
        self.find_region = find_region

        def zx(names) -> list:
            return [getattr(zxingcpp.BarcodeFormat, name) for name in names]

        self._zx_formats = zx(self.formats)
        self._zx_matrix = zx(name for name in self.formats if name not in _LINEAR)
        self._zx_linear = zx(name for name in self.formats if name in _LINEAR)
        self._zx_skew_formats = zx(name for name in self.formats if name in _SKEW_SENSITIVE)
        self._zx_tilt_proof = zx(name for name in self.formats if name not in _LINEAR | _SKEW_SENSITIVE)
        # The cheap look at a frame without a code-like region: the 2-D formats (1-D ones
        # double its cost, and a 1-D code, all bars, is the least likely to have no region).
        self._zx_net_formats = self._zx_matrix or self._zx_formats
        self._zbar_names = tuple(name for name in self.formats if name in _ZBAR_NAMES) if use_pyzbar else ()
        if self._zbar_names:
            load_pyzbar()  # a missing libzbar is logged when the decoder is built, not at the first odd frame

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
        """(name, thunk) for every pass, in order (module docstring); the pipeline stops at the first that reads.

        A tilted PDF417 is read levelled before it is read untouched: the
        other way round, every tilted licence cost ~180 ms at 1280x720, all
        of it zxing-cpp failing on rows that are not level.
        """
        height, width = gray.shape
        whole = (0, height, 0, width)
        region = find_code_region(gray) if self.find_region else whole
        net = partial(self._zxing, gray, formats=self._zx_net_formats, try_rotate=False, try_invert=False)
        if region is None:
            yield "net", net
            return
        top, bottom, left, right = region
        crop = gray if region == whole else np.ascontiguousarray(gray[top:bottom, left:right])
        offset = None if region == whole else translation(left, top)
        fill = int(crop.mean())
        levelled_formats = self._zx_skew_formats or self._zx_linear
        angle = estimate_skew(crop) if levelled_formats and self.measure_skew else 0.0
        tilted = abs(angle) >= _SKEW_MIN_DEG
        level = _Turn(crop, offset, angle, fill)
        fast = {"try_rotate": False, "try_invert": False, "matrix": offset}
        if tilted and self._zx_skew_formats:
            # PDF417 and Aztec are read levelled, and untouched only by the full pass below;
            # QR and DataMatrix read as well tilted, so they need no turn.
            yield f"level {angle:+.2f}", partial(self._levelled, level)
            if self._zx_tilt_proof:
                yield "fast", partial(self._zxing, crop, formats=self._zx_tilt_proof, **fast)
        elif self._zx_matrix:
            yield "fast", partial(self._zxing, crop, formats=self._zx_matrix, **fast)
        if self._zx_linear:
            yield "fast 1D", partial(self._zxing, crop, formats=self._zx_linear, **fast)
            if tilted:  # a 1D code tilted past the height of its bars has no straight row across it
                yield f"level 1D {angle:+.2f}", partial(self._levelled_1d, level)
        yield "full", partial(self._zxing, crop, matrix=offset)
        yield "otsu", lambda: self._zxing(otsu_binarize(crop), matrix=offset, try_invert=False)
        tried = [angle] if tilted else []
        for extra in self.skew_angles if self._zx_skew_formats else ():
            if abs(extra) >= _SKEW_MIN_DEG and all(abs(extra - a) >= _SKEW_SAME_DEG for a in tried):
                tried.append(extra)
                yield f"skew {extra:+.2f}", partial(self._levelled, _Turn(crop, offset, extra, fill))
        if self._zbar_names:
            yield "pyzbar", partial(self._zbar, crop, left, top)

    def _levelled(self, turn: "_Turn") -> list[Barcode]:
        """The region turned level, read as is, Otsu-cut and 3x3-averaged: three binarisation regimes.

        Only the skew-sensitive formats: QR and DataMatrix read as well
        tilted (the next pass), and 1D codes have a pass of their own.
        """
        turned = turn.image()
        doubtful: list[Barcode] = []
        for prepare in (None, otsu_binarize, box_blur):
            frame = prepare(turned) if prepare else turned
            found = self._zxing(
                frame, formats=self._zx_skew_formats, matrix=turn.matrix(), rotation=turn.angle, try_invert=False
            )
            if any(b.spare_ec != 0.0 for b in found):
                return found + doubtful
            doubtful += found
        return doubtful

    def _levelled_1d(self, turn: "_Turn") -> list[Barcode]:
        return self._zxing(
            turn.image(), formats=self._zx_linear, matrix=turn.matrix(), rotation=turn.angle, try_invert=False
        )

    def _zbar(self, crop: np.ndarray, left: int, top: int) -> list[Barcode]:
        found = read_with_pyzbar(crop, self._zbar_names)
        if not (left or top):
            return found
        return [
            replace(b, position=tuple((x + left, y + top) for x, y in b.position) if b.position else None)
            for b in found
        ]

    def _zxing(self, gray: np.ndarray, *, formats=None, matrix=None, rotation=0.0, **options) -> list[Barcode]:
        """zxing-cpp on one image; ``matrix`` maps the caller's frame onto it (crop, turn), for the corners."""
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


class _Turn:
    """A region turned by ``angle`` degrees, turned on first use and only once."""

    def __init__(self, crop: np.ndarray, offset: np.ndarray | None, angle: float, fill: int) -> None:
        self.crop, self.offset, self.fill, self._degrees = crop, offset, fill, angle
        self.angle = round(angle, 2)  # as reported in Barcode.rotation
        self._turned: tuple[np.ndarray, np.ndarray] | None = None

    def image(self) -> np.ndarray:
        return self._turn()[0]

    def matrix(self) -> np.ndarray:
        """From the caller's frame to the turned image (crop offset, then the turn)."""
        return self._turn()[1]

    def _turn(self) -> tuple[np.ndarray, np.ndarray]:
        if self._turned is None:
            turned, turn = rotate(self.crop, self._degrees, self.fill)
            self._turned = (turned, turn if self.offset is None else compose(turn, self.offset))
        return self._turned


def _corners(position, matrix: np.ndarray | None) -> tuple[tuple[int, int], ...] | None:
    if position is None:
        return None
    points = [position.top_left, position.top_right, position.bottom_right, position.bottom_left]
    coords = np.array([[p.x, p.y] for p in points], dtype=np.float64)
    if matrix is not None:  # back from the cropped or turned image to the caller's frame
        inverse = invert_affine(matrix)
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
