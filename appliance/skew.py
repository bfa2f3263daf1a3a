"""Levelling a tilted code: measure the skew of a frame's main edges, and turn the frame.

zxing-cpp's PDF417 reader samples each row along a straight line, so it needs
the rows level to about a quarter of a degree (docs/decoding.md). Pure numpy,
with OpenCV's affine warp when it is installed (1 ms for a 1280x720 frame
against Pillow's 10 ms; the same geometry).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

try:
    import cv2 as _cv2
except ImportError:  # pragma: no cover - exercised by forcing _cv2 = None in tests
    _cv2 = None


# Edge points kept for the angle search: as accurate as all of them on 630 generated
# licence frames (docs/decoding.md), and the search costs in proportion to their number.
_MAX_EDGE_POINTS = 10_000


def translation(left: float, top: float) -> np.ndarray:
    """The affine map from a frame to its crop starting at (left, top)."""
    return np.array([[1.0, 0.0, -left], [0.0, 1.0, -top]])


def compose(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The 2x3 affine map that applies ``first``, then ``second``."""
    return np.hstack([second[:, :2] @ first[:, :2], second[:, :2] @ first[:, 2:] + second[:, 2:]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The 2x3 affine map back: from a turned or cropped image to the frame it came from."""
    linear = matrix[:, :2]
    inverse = np.linalg.inv(linear)
    return np.hstack([inverse, -inverse @ matrix[:, 2:]])


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
    inverse = invert_affine(matrix)
    turned = Image.fromarray(gray).transform(
        (out_w, out_h), Image.AFFINE, tuple(inverse.ravel()), resample=Image.BILINEAR, fillcolor=fill
    )
    return np.asarray(turned), matrix


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

    Only the strongest edges count: those above 0.6 of the 99th percentile
    of edge energy, a rule that holds whether the code fills a tenth of the
    image (a whole frame) or half of it (the code's region). Every other row
    is used (a PDF417 row is at least 3 modules high). About 3-4 ms for the
    region of a licence code in a 1280x720 frame, 10-13 ms for the whole frame.
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
    cut = np.partition(sample, int(sample.size * 0.99))[int(sample.size * 0.99)]
    ys, xs = np.nonzero(energy > max(cut * 0.6, 1.0))
    if ys.size < 50:
        return 0.0
    if ys.size > _MAX_EDGE_POINTS:  # a crisp level code ties thousands of edges at full strength
        stride = -(-ys.size // _MAX_EDGE_POINTS)
        ys, xs = ys[::stride], xs[::stride]
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
