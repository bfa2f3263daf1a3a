"""The code-region finder: every code inside its region, and no region where there is no code."""

from __future__ import annotations

import math

import numpy as np
import pytest

from appliance.code_region import CELL_PX, MARGIN_CELLS, find_code_region
from tests.support.images import (
    BCBP_SINGLE_LEG,
    DEGRADATIONS,
    FRAME_SIZE,
    LINEAR_PAYLOADS,
    SMALL_FRAME_SIZE,
    degrade,
    degraded_corpus,
    place_in_frame,
    render,
    render_document_without_code,
    render_zxing,
)

CARD_MARGIN = 12  # place_in_frame's white border around the code


def _card_box(code_shape: tuple[int, int], skew: float, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Where place_in_frame puts the turned card: (top, bottom, left, right), centred in the frame."""
    h, w = code_shape[0] + 2 * CARD_MARGIN, code_shape[1] + 2 * CARD_MARGIN
    rad = math.radians(skew)
    bw, bh = w * abs(math.cos(rad)) + h * abs(math.sin(rad)), w * abs(math.sin(rad)) + h * abs(math.cos(rad))
    cx, cy = size[0] / 2, size[1] / 2
    return cy - bh / 2, cy + bh / 2, cx - bw / 2, cx + bw / 2


def _contains(region, box, slack: float = 2.0) -> bool:
    top, bottom, left, right = region
    b_top, b_bottom, b_left, b_right = box
    return top <= b_top + slack and bottom >= b_bottom - slack and left <= b_left + slack and right >= b_right - slack


GENERATED = degraded_corpus(skews=(-15.0, -6.3, 0.0, 8.8, 15.0), module_sizes=(2, 3))


@pytest.mark.parametrize("case", GENERATED[::4], ids=lambda c: c.id)
def test_every_generated_code_and_its_card_lie_inside_the_region(case):
    code = render(case.payload, case.symbology, module_px=case.module_px)

    region = find_code_region(case.frame())

    assert region is not None and _contains(region, _card_box(code.shape, case.skew, case.size))


@pytest.mark.parametrize("symbology", sorted(LINEAR_PAYLOADS))
@pytest.mark.parametrize("degradation", ["clean", "all"])
def test_every_1d_code_lies_inside_the_region(symbology, degradation):
    code = render_zxing(LINEAR_PAYLOADS[symbology], symbology, module_px=3)
    frame = degrade(place_in_frame(code, skew=-9.0), degradation)

    assert _contains(find_code_region(frame), _card_box(code.shape, -9.0, FRAME_SIZE))


@pytest.mark.parametrize("size", [FRAME_SIZE, SMALL_FRAME_SIZE], ids=["1280x720", "640x480"])
@pytest.mark.parametrize("degradation", DEGRADATIONS)
def test_textured_counter_with_an_empty_card_has_no_region(size, degradation):
    # The white card's outline, blurred or not, is a line of edges, not a patch of them.
    frame = degrade(place_in_frame(np.full((60, 90), 255, np.uint8), skew=7.0, size=size), degradation)

    assert find_code_region(frame) is None


def test_noisy_frame_does_not_light_up_around_a_small_code():
    code = render(BCBP_SINGLE_LEG, "QRCode", module_px=4)
    frame = degrade(place_in_frame(code, skew=5.0), "noise")  # sensor noise of 12 grey levels everywhere

    top, bottom, left, right = find_code_region(frame)

    assert (bottom - top) * (right - left) < FRAME_SIZE[0] * FRAME_SIZE[1] / 4
    assert {top % CELL_PX, left % CELL_PX} == {0}


def test_small_image_is_its_own_region():
    image = np.full((200, 300), 255, np.uint8)

    assert find_code_region(image) == (0, 200, 0, 300)


def test_code_printed_to_the_edge_of_the_image_is_inside_the_region():
    code = render_zxing(LINEAR_PAYLOADS["Code128"], "Code128", module_px=3)[:, 30:-30]  # no quiet zone
    frame = np.full((720, 1280), 200, np.uint8)
    frame[300 : 300 + code.shape[0], 1280 - code.shape[1] :] = code

    top, bottom, left, right = find_code_region(frame)

    assert right == 1280 and left <= 1280 - code.shape[1] and top <= 300 and bottom >= 300 + code.shape[0]


def test_faint_code_of_twenty_grey_levels_is_found():
    code = render_zxing(LINEAR_PAYLOADS["Code39"], "Code39", module_px=3)
    frame = (place_in_frame(code).astype(np.float32) * (20 / 255) + 118).astype(np.uint8)

    assert _contains(find_code_region(frame), _card_box(code.shape, 0.0, FRAME_SIZE))


def test_passport_page_on_a_grainy_counter_is_a_region_of_the_page_not_of_the_frame():
    # The page, blown out to white, hides the noise the counter around it shows; the
    # noise estimate must follow the counter, or the whole frame lights up.
    page = render_document_without_code(width=800, text_px=20)
    frame = degrade(place_in_frame(page), "noise")

    region = find_code_region(frame)

    margin = (MARGIN_CELLS + 1) * CELL_PX  # the margin, and a cell for the grid
    assert region is not None and _contains(_card_box(page.shape, 0.0, FRAME_SIZE), region, slack=margin)


def test_printed_page_without_a_code_is_a_region_too():
    # Dense print looks like a code to a 2 ms test; the readers then find nothing (docs/decoding.md).
    assert find_code_region(place_in_frame(render_document_without_code())) is not None
