"""Where in a camera frame a barcode can be: a 2 ms look before the readers that cost 10-80 ms.

Every symbology is a patch packed with strong edges: bars and spaces, or
modules, one to a few pixels apart. A counter top, paper, skin and a card's
outline are not: they have a few edges in a line, not a patch full of them.
So the frame is cut into cells, each cell is scored by the share of its
pixels where a strong edge peaks, and the region is the box around every cell
that scores like a barcode, with a margin for the quiet zone.

The readers then work on that crop instead of the frame: zxing-cpp's 2-D
detectors cost in proportion to the area they search and its 1-D readers to
the rows they scan. A frame with no such cell holds nothing a reader could
decode, so the expensive retries are skipped (docs/decoding.md).

Pure numpy; no I/O.
"""

from __future__ import annotations

import numpy as np

CELL_PX = 32  # side of a scoring cell, in frame pixels
SMALL_FRAME_PX = 320 * 240  # below this the whole frame is the region: every reader is cheap there
CODE_EDGE_SHARE = 0.15  # a cell with more of its pixels at a strong edge's peak than this looks like a code
MIN_EDGE_STEP = 12  # grey levels between neighbours that make a strong edge ...
MAX_EDGE_STEP = 48  # ... raised with the frame's noise, up to this
NOISE_FACTOR = 3.5  # the step must stand this far above the frame's noise
MARGIN_CELLS = 2  # cells kept around the region: quiet zones and the parts of a code's edge cells that scored low

Region = tuple[int, int, int, int]  # top, bottom, left, right: gray[top:bottom, left:right]


def find_code_region(gray: np.ndarray) -> Region | None:
    """The box around every patch of ``gray`` with a barcode's density of strong edges, or None.

    Cells are scored at two scales, a 2x and a 4x averaged copy of the frame:
    averaging takes out sensor noise, and the coarser copy packs the large
    modules of a close-up QR code as densely as the fine one packs a licence's
    3 px PDF417 modules. The edge threshold follows the frame's noise
    (:func:`_noise`), within fixed bounds, so a grainy frame does not light
    up everywhere and a faint code still counts.
    Frames up to ``SMALL_FRAME_PX`` pixels are returned whole.
    """
    height, width = gray.shape
    if height * width <= SMALL_FRAME_PX:
        return (0, height, 0, width)
    frame = gray[: height // 4 * 4, : width // 4 * 4]
    fine = frame[0::2, 0::2].astype(np.uint16)  # 4x the 2x2 mean, summed in place: no full-size copy
    for dy, dx in ((0, 1), (1, 0), (1, 1)):
        fine += frame[dy::2, dx::2]
    coarse = fine[0::2, 0::2] + fine[0::2, 1::2] + fine[1::2, 0::2] + fine[1::2, 1::2]  # 16x the 4x4 mean
    step = min(max(MIN_EDGE_STEP, NOISE_FACTOR * _noise(fine, CELL_PX // 2) / 4), MAX_EDGE_STEP)

    code_like = _edge_share(fine, 4 * step, CELL_PX // 2) > CODE_EDGE_SHARE
    coarse_cells = _edge_share(coarse, 16 * step, CELL_PX // 2) > CODE_EDGE_SHARE  # cells of 2 * CELL_PX
    spread = np.repeat(np.repeat(coarse_cells, 2, axis=0), 2, axis=1)
    rows, cols = min(spread.shape[0], code_like.shape[0]), min(spread.shape[1], code_like.shape[1])
    code_like[:rows, :cols] |= spread[:rows, :cols]
    if not code_like.any():
        return None
    ys, xs = np.nonzero(code_like)
    top = max(int(ys.min()) - MARGIN_CELLS, 0) * CELL_PX
    left = max(int(xs.min()) - MARGIN_CELLS, 0) * CELL_PX
    bottom = min((int(ys.max()) + 1 + MARGIN_CELLS) * CELL_PX, height)
    right = min((int(xs.max()) + 1 + MARGIN_CELLS) * CELL_PX, width)
    return (top, bottom, left, right)


def _noise(scaled: np.ndarray, cell: int) -> float:
    """The typical difference of horizontal neighbours where the frame is grainy, in ``scaled``'s units.

    Each cell's median difference is its noise (one edge through a cell does not move
    a median); the frame's is the upper quartile of those, so a page blown out to
    white, where noise is clipped away, does not lower it for the counter around
    the page. Code and print cells sit above the quartile only if they fill a
    quarter of the frame; MAX_EDGE_STEP caps what that can do.
    """
    rows, cols = scaled.shape[0] // cell, (scaled.shape[1] - 1) // cell
    sample = scaled[: rows * cell : 4, : cols * cell + 1].astype(np.int16)  # every fourth row
    diffs = np.abs(np.diff(sample, axis=1)).reshape(rows, cell // 4, cols, cell)
    per_cell = np.median(diffs.transpose(0, 2, 1, 3).reshape(rows, cols, -1), axis=2)
    return float(np.percentile(per_cell, 75))


def _edge_share(scaled: np.ndarray, threshold: float, cell: int) -> np.ndarray:
    """Per cell of ``cell`` x ``cell`` pixels, the share of pixels where a strong edge peaks.

    An edge counts once where its step peaks along the row (or the column),
    however blurred it is: a blurred card outline is then one thin line, a
    sixteenth of a cell, while bars and modules put a peak every few pixels.
    """
    signed = scaled.astype(np.int16)
    across = np.abs(np.diff(signed, axis=1))[:-1]
    down = np.abs(np.diff(signed, axis=0))[:, :-1]
    peaks = np.zeros(across.shape, dtype=bool)
    mid = across[:, 1:-1]
    peaks[:, 1:-1] = (mid > threshold) & (mid >= across[:, :-2]) & (mid > across[:, 2:])
    mid = down[1:-1, :]
    peaks[1:-1, :] |= (mid > threshold) & (mid >= down[:-2, :]) & (mid > down[2:, :])
    height, width = peaks.shape
    rows, cols = -(-height // cell), -(-width // cell)
    padded = np.zeros((rows * cell, cols * cell), dtype=np.uint8)
    padded[:height, :width] = peaks
    counts = padded.reshape(rows, cell, cols, cell).sum(axis=(1, 3))
    # Cells cut by the frame's edge hold fewer pixels: a code printed to the edge still counts,
    # but a sliver (under a quarter of a cell) is not scored as if it were a whole cell.
    cell_rows = np.minimum(cell, height - cell * np.arange(rows))
    cell_cols = np.minimum(cell, width - cell * np.arange(cols))
    return counts / np.maximum(np.outer(cell_rows, cell_cols), cell * cell / 4)
