"""Image decoding: exact bytes, skewed and degraded frames, inputs, errors, the zbar backend."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from appliance import decode as decode_module
from appliance import skew as skew_module
from appliance.code_region import find_code_region
from appliance.decode import (
    COUNTER_FORMATS,
    LINEAR_FORMATS,
    Barcode,
    DecodeError,
    ImageDecoder,
    decode_image,
    estimate_skew,
    to_gray,
)
from tests.support.images import (
    AAMVA_CALIFORNIA,
    AAMVA_ONTARIO,
    AAMVA_PAYLOADS,
    BCBP_PAYLOADS,
    BCBP_SINGLE_LEG,
    BCBP_TWO_LEGS,
    DEGRADATIONS,
    LINEAR_PAYLOADS,
    Case,
    degrade,
    degraded_corpus,
    place_in_frame,
    render,
    render_document_without_code,
    render_payload_file,
    render_zxing,
)

AAMVA_HEADER = b"@\n\x1e\rANSI 636014090102DL00410288ZC03290034DL"
DECODER = ImageDecoder()


def _frame_with(payload: bytes, symbology: str = "PDF417", *, skew: float = 0.0, module_px: int = 3) -> np.ndarray:
    return place_in_frame(render(payload, symbology, module_px=module_px), skew=skew)


def _blank_frame() -> np.ndarray:
    return place_in_frame(np.full((40, 40), 255, np.uint8))


# --------------------------------------------------------------------------- exact bytes


def test_aamva_lf_rs_cr_survive_byte_exact_through_zxing_writer():
    payload = AAMVA_HEADER + b"DAQD1234562\nDCSPUBLIC\nDACJOHN\r"
    barcode = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.PDF417)
    image = np.asarray(zxingcpp.write_barcode_to_image(barcode, scale=3))

    [found] = decode_image(image)

    assert found.payload == payload
    assert found.text == payload.decode("latin-1")
    assert found.text.startswith("@\n\x1e\rANSI ")
    assert "<LF>" not in found.text and found.symbology == "PDF417" and found.backend == "zxing-cpp"


def test_aamva_licence_from_independent_encoder_keeps_latin1_and_control_bytes():
    [found] = decode_image(_frame_with(AAMVA_ONTARIO))

    assert found.payload == AAMVA_ONTARIO
    assert "MARIE-ÈVE" in found.text and found.text.count("\n") == AAMVA_ONTARIO.count(b"\n")


@settings(max_examples=40, deadline=None)
@given(payload=st.binary(min_size=1, max_size=300), symbology=st.sampled_from(["PDF417", "Aztec", "QRCode", "DataMatrix"]))
def test_any_payload_bytes_come_back_exactly(payload, symbology):
    image = np.pad(render_zxing(payload, symbology, module_px=3), 12, constant_values=255)

    found = DECODER.decode(image)

    assert [b.payload for b in found] == [payload]


# --------------------------------------------------------------------------- generated corpus


def _each_skew_and_degradation(symbology: str, payloads: dict, skews, module_px: int) -> list[Case]:
    """One case per (skew, degradation) pair; the payloads take turns."""
    named = list(payloads.items())
    cases = []
    for i, (skew, degradation) in enumerate((s, d) for s in skews for d in DEGRADATIONS):
        name, payload = named[i % len(named)]
        cases.append(Case(name, symbology, payload, skew, degradation, module_px))
    return cases


# Every 5 degrees from -15 to +15 and, so the skew search is not tuned to a grid,
# angles between the grid points; plus cards held upright (frame turned 90 degrees).
PDF417_SKEWS = (-15, -13.3, -10, -7.5, -5, -2.2, 0, 1.4, 5, 6.8, 10, 12.6, 15)
PDF417_CORPUS = _each_skew_and_degradation("PDF417", AAMVA_PAYLOADS, PDF417_SKEWS, 3) + [
    Case(name, "PDF417", AAMVA_PAYLOADS[name], skew, degradation, quarter_turn=True)
    for name, skew, degradation in [
        ("aamva-california", -11.7, "noise"),
        ("aamva-ontario", 4.1, "all"),
        ("aamva-california", 9.0, "blur"),
        ("aamva-ontario", 0.0, "low-contrast"),
    ]
]


@pytest.mark.parametrize("case", PDF417_CORPUS, ids=lambda c: c.id)
def test_degraded_skewed_licence_pdf417_decodes_byte_exact(case):
    found = DECODER.decode(case.frame())

    assert [b.payload for b in found] == [case.payload]


BOARDING_PASS_SKEWS = (-15, -10, -5, 0, 5, 7.7, 10, 15)
BOARDING_PASS_CORPUS = [
    case
    for symbology in ("Aztec", "QRCode")
    for case in _each_skew_and_degradation(symbology, BCBP_PAYLOADS, BOARDING_PASS_SKEWS, 4)
]


@pytest.mark.parametrize("case", BOARDING_PASS_CORPUS, ids=lambda c: c.id)
def test_degraded_skewed_boarding_pass_aztec_and_qr_decode_byte_exact(case):
    found = DECODER.decode(case.frame())

    assert [b.payload for b in found] == [case.payload]


def test_generated_payloads_are_documents_the_parsers_accept():
    from appliance.documents import parse_payload

    for payload in (*AAMVA_PAYLOADS.values(), BCBP_SINGLE_LEG, BCBP_TWO_LEGS):
        assert parse_payload(payload, today=date(2024, 11, 1)).valid, payload[:40]


def test_corpus_generator_covers_every_five_degrees_and_every_degradation():
    skews = {c.skew for c in degraded_corpus()}
    assert {-15, -10, -5, 0, 5, 10, 15} <= skews
    assert {c.degradation for c in degraded_corpus()} == set(DEGRADATIONS)


def test_bare_zxing_misses_a_skewed_licence_that_the_skew_search_reads():
    frame = Case("aamva-california", "PDF417", AAMVA_CALIFORNIA, 7.5, "clean").frame()

    bare = zxingcpp.read_barcodes(frame, text_mode=zxingcpp.TextMode.Plain)
    [found] = DECODER.decode(frame)

    assert bare == []
    assert found.payload == AAMVA_CALIFORNIA
    assert found.rotation == pytest.approx(-7.5, abs=0.3)


def test_skew_found_code_reports_corners_in_the_callers_frame():
    frame = _frame_with(AAMVA_CALIFORNIA, skew=8.0)

    [found] = DECODER.decode(frame)

    corners = np.array(found.position, dtype=float)
    assert corners.mean(axis=0) == pytest.approx((640, 360), abs=15)
    # Top and bottom edges climb to the right: the card is turned counter-clockwise by 8 degrees.
    # (zxing-cpp's PDF417 corners are rough to a few degrees on their own, so average the two edges.)
    (tl, tr, br, bl) = corners
    slopes = [math.degrees(math.atan2(a[1] - b[1], b[0] - a[0])) for a, b in ((tl, tr), (bl, br))]
    assert sum(slopes) / 2 == pytest.approx(8.0, abs=2.0)


@pytest.mark.parametrize("skew", [-14.2, -6.0, -0.9, 3.3, 11.1])
def test_skew_estimate_is_within_a_quarter_degree(skew):
    frame = Case("aamva-ontario", "PDF417", AAMVA_ONTARIO, skew, "noise").frame()

    assert estimate_skew(frame) == pytest.approx(-skew, abs=0.3)


def test_skew_estimate_of_a_featureless_frame_is_level():
    assert estimate_skew(np.full((720, 1280), 128, np.uint8)) == 0.0
    assert estimate_skew(np.zeros((4, 4), np.uint8)) == 0.0


def _stage_names(frame: np.ndarray, decoder: ImageDecoder = DECODER) -> list[str]:
    """Pass names without their angles ("level -7.25" -> "level")."""
    return [" ".join(w for w in name.split(" ") if not w[-1].isdigit()) for name, _ in decoder._stages(to_gray(frame))]


def _first_reading_stage(frame: np.ndarray, decoder: ImageDecoder = DECODER) -> tuple[str, list[Barcode]]:
    for name, run in decoder._stages(to_gray(frame)):
        found = run()
        if found:
            return name, found
    return "", []


def test_level_code_is_read_by_the_first_pass_on_its_region_in_frame_coordinates():
    frame = _frame_with(BCBP_TWO_LEGS, "Aztec", module_px=4)

    name, [found] = _first_reading_stage(frame)

    assert name == "fast"
    assert found.payload == BCBP_TWO_LEGS and found.rotation == 0.0
    assert np.array(found.position, dtype=float).mean(axis=0) == pytest.approx((640, 360), abs=10)


def test_tilted_licence_is_read_levelled_before_the_untouched_passes_fail_slowly_on_it():
    frame = Case("aamva-ontario", "PDF417", AAMVA_ONTARIO, 9.0, "noise").frame()

    names = _stage_names(frame)
    name, [found] = _first_reading_stage(frame)

    assert names[:2] == ["level", "fast"] and name.startswith("level ")  # "fast": QR and DataMatrix only
    assert found.payload == AAMVA_ONTARIO and found.rotation == pytest.approx(-9.0, abs=0.3)


def test_frame_without_a_code_like_region_gets_one_cheap_whole_frame_pass():
    assert _stage_names(_blank_frame()) == ["net"]


def test_faint_code_below_the_region_threshold_is_still_read_by_the_whole_frame_pass():
    # 12 grey levels between ink and paper, a little sensor noise: bare zxing-cpp reads it,
    # the region finder (it wants steps of 12 levels between 2x2-averaged pixels) does not.
    frame = _frame_with(AAMVA_CALIFORNIA).astype(np.float32) * (12 / 255) + 122
    frame = np.clip(frame + np.random.default_rng(1).normal(0, 2, frame.shape), 0, 255).astype(np.uint8)

    assert find_code_region(frame) is None
    assert [b.payload for b in DECODER.decode(frame)] == [AAMVA_CALIFORNIA]


def test_region_without_a_code_runs_plain_passes_before_binarised_ones_and_zbar_last():
    frame = place_in_frame(render_document_without_code())  # print everywhere, no code: every pass runs

    names = [n for n in _stage_names(frame) if not n.startswith("level")]

    assert names == ["fast", "fast 1D", "full", "otsu", "pyzbar"]


def test_frame_with_two_codes_reports_both():
    frame = np.full((480, 1000), 255, np.uint8)
    qr = render(BCBP_SINGLE_LEG, "QRCode", module_px=4)
    aztec = render(BCBP_TWO_LEGS, "Aztec", module_px=4)
    frame[40 : 40 + qr.shape[0], 40 : 40 + qr.shape[1]] = qr
    frame[40 : 40 + aztec.shape[0], 560 : 560 + aztec.shape[1]] = aztec

    found = DECODER.decode(frame)

    assert {(b.symbology, b.payload) for b in found} == {("QRCode", BCBP_SINGLE_LEG), ("Aztec", BCBP_TWO_LEGS)}


def test_same_code_twice_in_a_frame_is_reported_once():
    qr = np.pad(render(BCBP_SINGLE_LEG, "QRCode", module_px=4), 20, constant_values=255)
    frame = np.hstack([qr, qr])

    assert [b.payload for b in DECODER.decode(frame)] == [BCBP_SINGLE_LEG]


def test_frame_without_a_code_gives_an_empty_list():
    assert DECODER.decode(_blank_frame()) == []


def test_skew_search_works_without_opencv(monkeypatch):
    monkeypatch.setattr(decode_module, "_cv2", None)
    monkeypatch.setattr(skew_module, "_cv2", None)
    frame = Case("aamva-ontario", "PDF417", AAMVA_ONTARIO, -6.3, "clean").frame()

    [found] = DECODER.decode(frame)

    assert found.payload == AAMVA_ONTARIO and found.rotation == pytest.approx(6.3, abs=0.3)


def test_formats_restrict_what_is_reported():
    frame = _frame_with(BCBP_SINGLE_LEG, "QRCode", module_px=4)

    assert ImageDecoder(formats=("PDF417",), use_pyzbar=False).decode(frame) == []
    assert [b.symbology for b in ImageDecoder(formats=("QRCode",)).decode(frame)] == ["QRCode"]


def test_unknown_format_name_is_refused():
    with pytest.raises(ValueError, match="Nope"):
        ImageDecoder(formats=("Nope",))


# --------------------------------------------------------------------------- 1D codes


def _linear_frame(symbology: str, *, skew: float = 0.0, degradation: str = "clean", module_px: int = 3) -> np.ndarray:
    payload = LINEAR_PAYLOADS[symbology]
    return degrade(place_in_frame(render_zxing(payload, symbology, module_px=module_px), skew=skew), degradation)


def test_1d_formats_are_read_by_default():
    assert set(LINEAR_FORMATS) <= set(ImageDecoder().formats) and COUNTER_FORMATS == ImageDecoder().formats


@pytest.mark.parametrize("symbology", sorted(LINEAR_PAYLOADS))
def test_1d_code_decodes_by_default_byte_exact(symbology):
    [found] = DECODER.decode(_linear_frame(symbology))

    assert (found.symbology, found.payload, found.backend) == (symbology, LINEAR_PAYLOADS[symbology], "zxing-cpp")
    assert found.text == LINEAR_PAYLOADS[symbology].decode()


@pytest.mark.parametrize(
    "symbology, skew, degradation",
    [
        ("Code128", -15.0, "noise"),
        ("Code128", 11.3, "all"),
        ("Code128", 4.0, "blur"),
        ("Code39", 15.0, "low-contrast"),
        ("Code39", -7.5, "all"),
        ("EAN13", 12.0, "noise"),
    ],
)
def test_tilted_and_degraded_1d_code_decodes_byte_exact(symbology, skew, degradation):
    frame = _linear_frame(symbology, skew=skew, degradation=degradation)

    assert [b.payload for b in DECODER.decode(frame)] == [LINEAR_PAYLOADS[symbology]]


def test_code128_tilted_past_its_bar_height_is_read_levelled_where_bare_zxing_reads_nothing():
    frame = _linear_frame("Code128", skew=15.0)

    bare = zxingcpp.read_barcodes(frame, text_mode=zxingcpp.TextMode.Plain)
    name, [found] = _first_reading_stage(frame)

    assert bare == []
    assert name.startswith("level 1D") and found.payload == LINEAR_PAYLOADS["Code128"]
    assert found.rotation == pytest.approx(-15.0, abs=0.5)


def test_code128_at_2px_per_module_in_a_640x480_frame_decodes():
    payload = b"EABC123 YULFRA 0834"
    frame = place_in_frame(render_zxing(payload, "Code128", module_px=2), size=(640, 480), skew=6.0)

    assert [b.payload for b in DECODER.decode(frame)] == [payload]


def test_upc_a_is_reported_as_the_ean13_it_is_a_subset_of():
    frame = place_in_frame(render_zxing(b"036000291452", "UPCA", module_px=3))

    [found] = DECODER.decode(frame)

    assert (found.symbology, found.payload) == ("EAN13", b"0036000291452")


def test_itf_is_opt_in_because_tilted_itf_gives_truncated_second_reads():
    payload = b"0220123456"  # an IATA bag-tag licence plate
    level = place_in_frame(render_zxing(payload, "ITF", module_px=3))
    tilted = place_in_frame(render_zxing(payload, "ITF", module_px=3), skew=10.0)
    with_itf = ImageDecoder(formats=(*COUNTER_FORMATS, "ITF"))

    assert DECODER.decode(level) == []
    assert [b.payload for b in with_itf.decode(level)] == [payload]
    # Why it is not a default: ITF has no check digit, and a row leaving a tilted
    # code through its top edge is a shorter, equally valid ITF.
    assert {b.payload for b in with_itf.decode(tilted)} == {payload, payload[:8]}


def test_passport_page_without_a_barcode_gives_no_1d_misreads():
    for skew in (0.0, 4.0, -11.0):
        for degradation in DEGRADATIONS:
            frame = degrade(place_in_frame(render_document_without_code(), skew=skew), degradation)
            assert DECODER.decode(frame) == [], (skew, degradation)


def test_gatecheck_decode_prints_a_code128_found_in_an_image(tmp_path):
    path = tmp_path / "ticket.png"
    Image.fromarray(_linear_frame("Code128", skew=-6.0)).save(path)
    gatecheck = Path(sys.executable).with_name("gatecheck")

    proc = subprocess.run([str(gatecheck), "decode", str(path)], capture_output=True, timeout=60)

    assert proc.returncode == 0, proc.stderr
    [item] = json.loads(proc.stdout)
    assert item["symbology"] == "Code128" and item["payload"] == LINEAR_PAYLOADS["Code128"].decode()
    assert "error" in item["document"]  # a ticket line is not a travel document


# --------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def licence_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("decode") / "licence.png"
    Image.fromarray(_frame_with(AAMVA_CALIFORNIA)).save(path)
    return path


def _bgr(gray: np.ndarray) -> np.ndarray:
    return np.dstack([gray, gray, gray])


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: str(p), id="str-path"),
        pytest.param(lambda p: p, id="pathlib-path"),
        pytest.param(lambda p: Image.open(p), id="pil-gray"),
        pytest.param(lambda p: Image.open(p).convert("RGB"), id="pil-rgb"),
        pytest.param(lambda p: Image.open(p).convert("RGBA"), id="pil-rgba"),
        pytest.param(lambda p: Image.open(p).convert("P"), id="pil-palette"),
        pytest.param(lambda p: np.asarray(Image.open(p)), id="numpy-gray"),
        pytest.param(lambda p: np.asarray(Image.open(p))[:, :, None], id="numpy-gray-1-channel"),
        pytest.param(lambda p: _bgr(np.asarray(Image.open(p))), id="numpy-bgr"),
        pytest.param(lambda p: np.dstack([_bgr(np.asarray(Image.open(p))), np.full((720, 1280), 255, np.uint8)]), id="numpy-bgra"),
        pytest.param(lambda p: np.asarray(Image.open(p))[::-1, ::-1][::-1, ::-1], id="numpy-strided-view"),
    ],
)
def test_paths_pil_images_and_numpy_arrays_all_decode(licence_png, make):
    [found] = DECODER.decode(make(licence_png))

    assert found.payload == AAMVA_CALIFORNIA


def test_colour_arrays_are_read_as_bgr():
    blue, red = np.array([[[255, 0, 0]]], np.uint8), np.array([[[0, 0, 255]]], np.uint8)

    assert to_gray(blue)[0, 0] == round(0.114 * 255)
    assert to_gray(red)[0, 0] == round(0.299 * 255)


def test_transparent_png_is_flattened_on_white_paper():
    code = render(BCBP_SINGLE_LEG, "QRCode", module_px=4)
    rgba = np.zeros(code.shape + (4,), np.uint8)
    rgba[..., 3] = 255 - code  # black ink where the code is dark, transparent elsewhere

    [found] = DECODER.decode(Image.fromarray(rgba, "RGBA"))

    assert found.payload == BCBP_SINGLE_LEG


def test_grayscale_conversion_happens_once_even_when_every_pass_runs(monkeypatch):
    calls = []
    original = decode_module.to_gray
    monkeypatch.setattr(decode_module, "to_gray", lambda image: calls.append(1) or original(image))
    converts = []
    original_convert = Image.Image.convert
    monkeypatch.setattr(Image.Image, "convert", lambda self, *a, **k: converts.append(a) or original_convert(self, *a, **k))
    rgb = Image.fromarray(_bgr(place_in_frame(render_document_without_code(), skew=3.0)))

    found = DECODER.decode(rgb)

    assert found == []
    assert len(calls) == 1
    assert converts == [("L",)]


# --------------------------------------------------------------------------- errors


def test_missing_file_is_a_decode_error_naming_the_path(tmp_path):
    with pytest.raises(DecodeError, match="no such file") as info:
        DECODER.decode(tmp_path / "nope.png")
    assert "nope.png" in str(info.value)


def test_directory_is_a_decode_error(tmp_path):
    with pytest.raises(DecodeError, match="directory"):
        DECODER.decode(tmp_path)


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "payload.png"
    path.write_bytes(b"@\n\x1e\rANSI 636014")
    with pytest.raises(DecodeError, match="not an image"):
        DECODER.decode(str(path))


def test_truncated_png_is_a_damaged_image(tmp_path, licence_png):
    path = tmp_path / "cut.png"
    path.write_bytes(licence_png.read_bytes()[:2000])
    with pytest.raises(DecodeError, match="damaged"):
        DECODER.decode(path)


@pytest.mark.parametrize(
    "image, reason",
    [
        (42, "cannot decode a int"),
        (b"\x89PNG", "cannot decode a bytes"),
        (np.zeros((10, 10), np.float64), "uint8"),
        (np.zeros((0, 10), np.uint8), "empty"),
        (np.zeros((10, 10, 2), np.uint8), "shape"),
        (np.zeros((2, 3, 4, 5), np.uint8), "shape"),
        (Image.new("L", (0, 0)), "empty"),
    ],
)
def test_unsupported_objects_are_decode_errors(image, reason):
    with pytest.raises(DecodeError, match=reason):
        DECODER.decode(image)


# --------------------------------------------------------------------------- pyzbar backend


needs_zbar = pytest.mark.skipif(decode_module.load_pyzbar() is None, reason="libzbar is not installed here")


@needs_zbar
def test_pyzbar_backend_reads_a_boarding_pass_qr():
    frame = _frame_with(BCBP_TWO_LEGS, "QRCode", module_px=4)

    [found] = decode_module.read_with_pyzbar(frame, ("QRCode",))

    assert found == Barcode("QRCode", BCBP_TWO_LEGS, BCBP_TWO_LEGS.decode(), "pyzbar", found.position, 0.0)
    assert len(found.position) == 4


@needs_zbar
def test_pyzbar_backend_keeps_binary_qr_bytes_instead_of_reencoding_them():
    payload = b"\xe9\xff\x00abc\x1e\n\r\x93"
    image = np.pad(render_zxing(payload, "QRCode", module_px=4), 20, constant_values=255)

    [found] = decode_module.read_with_pyzbar(image, ("QRCode",))

    assert found.payload == payload


@needs_zbar
def test_pyzbar_is_never_asked_for_pdf417_or_aztec():
    frame = _frame_with(AAMVA_CALIFORNIA)

    assert decode_module.read_with_pyzbar(frame, ("PDF417", "Aztec")) == []


@needs_zbar
@pytest.mark.parametrize("symbology", ["Code128", "Code39", "EAN13", "EAN8", "Code93", "Codabar"])
def test_pyzbar_backend_reads_1d_codes_byte_exact(symbology):
    frame = _linear_frame(symbology)

    found = decode_module.read_with_pyzbar(frame, LINEAR_FORMATS)

    assert [(b.symbology, b.payload, b.backend) for b in found] == [(symbology, LINEAR_PAYLOADS[symbology], "pyzbar")]


@needs_zbar
def test_pipeline_zbar_pass_reads_a_1d_code_in_the_region_and_reports_frame_coordinates():
    frame = _linear_frame("Code39", skew=3.0, degradation="noise")
    top, bottom, left, right = find_code_region(frame)
    passes = dict(DECODER._stages(to_gray(frame)))

    [found] = passes["pyzbar"]()
    [on_whole_frame] = decode_module.read_with_pyzbar(frame, ("Code39",))

    assert (found.symbology, found.payload, found.backend) == ("Code39", LINEAR_PAYLOADS["Code39"], "pyzbar")
    assert (left, top) != (0, 0)
    assert found.position == on_whole_frame.position  # zbar read the region; points moved back to the frame


def test_missing_libzbar_is_one_log_line_not_a_crash(monkeypatch, caplog):
    monkeypatch.setattr(decode_module, "_zbar", decode_module._ZBAR_UNSET)
    monkeypatch.setitem(sys.modules, "pyzbar", None)  # import pyzbar now fails as without libzbar
    qr_frame = _frame_with(BCBP_SINGLE_LEG, "QRCode", module_px=4)
    no_code = place_in_frame(render_document_without_code())  # every pass runs, zbar's included

    with caplog.at_level(logging.WARNING, logger="appliance.decode"):
        decoder = ImageDecoder()
        assert ImageDecoder().decode(no_code) == []
        assert decoder.decode(no_code) == []
        assert decoder.decode(_blank_frame()) == []
        assert [b.payload for b in decoder.decode(qr_frame)] == [BCBP_SINGLE_LEG]

    lines = [r for r in caplog.records if "pyzbar" in r.getMessage()]
    assert len(lines) == 1
    assert "disabled" in lines[0].getMessage()


# --------------------------------------------------------------------------- sample rendering


def test_payload_file_renders_to_a_png_that_decodes_to_the_same_bytes(tmp_path):
    source = tmp_path / "licence.txt"
    source.write_bytes(AAMVA_CALIFORNIA)

    png = render_payload_file(source, tmp_path / "licence.png")

    assert [b.payload for b in DECODER.decode(png)] == [AAMVA_CALIFORNIA]
