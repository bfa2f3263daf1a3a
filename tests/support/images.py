"""Test-side barcode images: realistic payloads, renderers and camera degradations.

The decoder is tested on frames we make ourselves, so every expected payload is
known to the byte. Payloads imitate what a counter sees: AAMVA licence PDF417
(header with LF, RS, CR per AAMVA DL/ID Card Design Standard, Annex D, D.12.3),
IATA BCBP boarding passes (Resolution 792, format code "M") in Aztec and QR.

Renderers return 2-D ``uint8`` numpy arrays (0 = black, 255 = white). Degraders
take and return such arrays and are deterministic (seeded), so a failing case
can be replayed exactly.

Also runnable as a script to turn a payload file into a PNG::

    .venv/bin/python -m tests.support.images PAYLOAD_FILE OUT.png [--symbology PDF417]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pdf417gen
import zxingcpp
from PIL import Image, ImageFilter

FRAME_SIZE = (1280, 720)  # (width, height) of the counter camera frame
SMALL_FRAME_SIZE = (640, 480)


# --------------------------------------------------------------------------- payloads


def aamva_payload(
    elements: list[tuple[str, str]],
    *,
    iin: str = "636014",
    version: int = 10,
    jurisdiction_version: int = 0,
    subfile_type: str = "DL",
    jurisdiction_subfile: list[tuple[str, str]] | None = None,
) -> bytes:
    """Build an AAMVA PDF417 payload with a correct header and subfile directory.

    Layout per AAMVA DL/ID Card Design Standard D.12.3-D.12.4: compliance indicator "@", data element
    separator LF, record separator RS, segment terminator CR, "ANSI ", IIN,
    version, jurisdiction version, number of entries, then one designator
    (type, 4-digit offset, 4-digit length) per subfile. Each subfile starts with
    its type, has LF-separated elements and ends with CR.
    """

    def subfile(kind: str, items: list[tuple[str, str]]) -> bytes:
        body = "\n".join(f"{eid}{value}" for eid, value in items)
        return (kind + body + "\r").encode("latin-1")

    subfiles = [(subfile_type, subfile(subfile_type, elements))]
    if jurisdiction_subfile:
        subfiles.append(("ZC", subfile("ZC", jurisdiction_subfile)))
    header = b"@\n\x1e\rANSI " + f"{iin}{version:02d}{jurisdiction_version:02d}{len(subfiles):02d}".encode()
    offset = len(header) + 10 * len(subfiles)
    directory = b""
    for kind, data in subfiles:
        directory += f"{kind}{offset:04d}{len(data):04d}".encode()
        offset += len(data)
    return header + directory + b"".join(data for _, data in subfiles)


AAMVA_CALIFORNIA = aamva_payload(
    [
        ("DAQ", "D1234562"),
        ("DCS", "SAMPLE"),
        ("DDE", "N"),
        ("DAC", "ALEXANDER"),
        ("DDF", "N"),
        ("DAD", "JOSEPH"),
        ("DDG", "N"),
        ("DCA", "C"),
        ("DCB", "NONE"),
        ("DCD", "NONE"),
        ("DBD", "08312018"),
        ("DBB", "08311977"),
        ("DBA", "08312026"),
        ("DBC", "1"),
        ("DAU", "070 IN"),
        ("DAY", "BRO"),
        ("DAG", "2570 24TH STREET"),
        ("DAI", "ANYTOWN"),
        ("DAJ", "CA"),
        ("DAK", "958260000  "),
        ("DCF", "08/31/201862551/AAFD/26"),
        ("DCG", "USA"),
        ("DAW", "180"),
        ("DAZ", "BRO"),
        ("DCK", "18243D12345621401"),
        ("DDB", "10172017"),
        ("DDK", "1"),
    ],
    iin="636014",
    version=10,
    jurisdiction_subfile=[("ZCA", "BRN"), ("ZCB", "BLK"), ("ZCC", ""), ("ZCD", "")],
)

AAMVA_ONTARIO = aamva_payload(
    [
        ("DCA", "G"),
        ("DCB", ""),
        ("DCD", ""),
        ("DBA", "20290412"),
        ("DCS", "TREMBLAY-O'NEIL"),
        ("DAC", "MARIE-ÈVE"),
        ("DAD", "ANNE"),
        ("DBD", "20240412"),
        ("DBB", "19870412"),
        ("DBC", "2"),
        ("DAY", "GRN"),
        ("DAU", "165 cm"),
        ("DAG", "123 RUE PRINCIPALE APT 4"),
        ("DAI", "OTTAWA"),
        ("DAJ", "ON"),
        ("DAK", "K1A0B1    "),
        ("DAQ", "T7654-32109-70412"),
        ("DCF", "AB1234567"),
        ("DCG", "CAN"),
        ("DDE", "N"),
        ("DDF", "N"),
        ("DDG", "N"),
    ],
    iin="636012",
    version=8,
    jurisdiction_version=1,
)

AAMVA_MINIMAL = aamva_payload(
    [("DAQ", "X12345"), ("DCS", "DOE"), ("DAC", "JANE"), ("DBB", "01021990"), ("DBA", "01022030"), ("DCG", "USA")],
    iin="636000",
    version=9,
)

AAMVA_PAYLOADS: dict[str, bytes] = {
    "aamva-california": AAMVA_CALIFORNIA,
    "aamva-ontario": AAMVA_ONTARIO,
    "aamva-minimal": AAMVA_MINIMAL,
}

# IATA BCBP Resolution 792: the mandatory-items example, and a two-leg pass with
# conditional items, airline data and a security section, as airlines print them.
BCBP_SINGLE_LEG = b"M1DESMARAIS/LUC       EABC123 YULFRAAC 0834 326J001A0025 100"
BCBP_TWO_LEGS = (
    b"M2DESMARAIS/LUC       EABC123 YULFRAAC 0834 326J001A0025 13F>60B1WW4325BAC 2901412345678901 AC AC "
    b"1234567890123    20KLX58ZDEF456 FRAGVALH 3664 327C012C0030 12B292209876543210  LH                     "
    b"2PC^150GIWVC5EH7JNT684FVNJ91W2QA4DVN5J8K4F0L0GEQ3DF5TGBN8709HKT5D3DW3GBHFCVHMY7J5T6HFR4"
)
BCBP_PAYLOADS: dict[str, bytes] = {"bcbp-single-leg": BCBP_SINGLE_LEG, "bcbp-two-legs": BCBP_TWO_LEGS}

# 1D codes a counter meets, by zxing-cpp symbology name: a ticket or PNR line in
# Code 128, a licence number on the back of an older licence in Code 39, and the
# other 1D formats the decoder reads by default (check digits valid where the
# symbology has them).
LINEAR_PAYLOADS: dict[str, bytes] = {
    "Code128": b"M1DESMARAIS/LUC EABC123",
    "Code39": b"D1234562",
    "Code93": b"ABC-123",
    "Codabar": b"A40156B",
    "EAN13": b"4006381333931",
    "EAN8": b"96385074",
}


# --------------------------------------------------------------------------- renderers


def render_pdf417(payload: bytes, *, module_px: int = 3, columns: int = 13, security_level: int = 5) -> np.ndarray:
    """PDF417 as licences print it: 13 data columns, EC level 5, rows 3 modules high.

    Uses pdf417gen (an independent encoder), so the zxing-cpp reader is not
    only tested against its own writer.
    """
    codes = pdf417gen.encode(payload, columns=columns, security_level=security_level)
    image = pdf417gen.render_image(codes, scale=module_px, ratio=3, padding=2 * module_px)
    return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def render_zxing(payload: bytes, symbology: str, *, module_px: int = 4) -> np.ndarray:
    """Any symbology zxing-cpp can write ("Aztec", "QRCode", "PDF417", "DataMatrix", "Code128", "EAN13", ...).

    1D codes come out as tall as zxing-cpp draws them (50 modules' worth).
    """
    barcode = zxingcpp.create_barcode(payload, getattr(zxingcpp.BarcodeFormat, symbology))
    return np.asarray(zxingcpp.write_barcode_to_image(barcode, scale=module_px), dtype=np.uint8).copy()


def render(payload: bytes, symbology: str, *, module_px: int = 3) -> np.ndarray:
    """Render with the encoder a counter document would come from."""
    if symbology == "PDF417":
        return render_pdf417(payload, module_px=module_px)
    return render_zxing(payload, symbology, module_px=module_px)


# --------------------------------------------------------------------------- degraders


def blur(gray: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian blur: an out-of-focus or moving card."""
    return np.asarray(Image.fromarray(gray).filter(ImageFilter.GaussianBlur(sigma)), dtype=np.uint8).copy()


def noise(gray: np.ndarray, sigma: float = 12.0, *, seed: int = 0) -> np.ndarray:
    """Additive gaussian sensor noise."""
    rng = np.random.default_rng(seed)
    noisy = gray.astype(np.float32) + rng.normal(0.0, sigma, gray.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def low_contrast(gray: np.ndarray, low: int = 80, high: int = 160) -> np.ndarray:
    """Squeeze black..white into low..high: glare, a faded print, a dim counter."""
    scaled = low + gray.astype(np.float32) * ((high - low) / 255.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def place_in_frame(
    code: np.ndarray,
    *,
    skew: float = 0.0,
    size: tuple[int, int] = FRAME_SIZE,
    center: tuple[float, float] = (0.5, 0.5),
    card_margin: int = 12,
    seed: int = 0,
) -> np.ndarray:
    """Put a code, printed on a white card, into a camera frame, turned ``skew`` degrees.

    The card (the code plus ``card_margin`` white pixels) turns with the code,
    as a held card does, so the frame has no axis-aligned edge the code lacks.
    Around it is a mid-grey gradient with faint texture, so the detector
    cannot rely on a clean background.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    background = 90 + 50 * (xs / width) + 30 * (ys / height) + rng.normal(0, 6, (height, width))
    frame = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    card = Image.fromarray(np.pad(code, card_margin, constant_values=255))
    mask = Image.new("L", card.size, 255)
    if skew:
        card = card.rotate(skew, resample=Image.BICUBIC, expand=True, fillcolor=255)
        mask = mask.rotate(skew, resample=Image.BICUBIC, expand=True, fillcolor=0)
    cw, ch = card.size
    if ch > height or cw > width:
        raise ValueError(f"card {cw}x{ch} does not fit a {width}x{height} frame")
    top = min(max(int(round(center[1] * height - ch / 2)), 0), height - ch)
    left = min(max(int(round(center[0] * width - cw / 2)), 0), width - cw)
    frame.paste(card, (left, top), mask)
    return np.asarray(frame, dtype=np.uint8).copy()


def render_document_without_code(*, width: int = 640, text_px: int = 18) -> np.ndarray:
    """A passport data page as a camera sees it: printed fields, a photo and an MRZ, no barcode.

    The frame a counter camera sees most often besides an empty counter: dense
    print that is not a code. Lines from the ICAO 9303 Part 4 specimen (Appendix A).
    """
    from PIL import ImageDraw, ImageFont

    height = int(width * 0.7)
    page = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=text_px)
    mrz_font = ImageFont.load_default(size=int(text_px * 1.2))
    rng = np.random.default_rng(7)
    photo = np.clip(150 + rng.normal(0, 35, (height // 2, width // 4)), 0, 255).astype(np.uint8)
    page.paste(Image.fromarray(photo).filter(ImageFilter.GaussianBlur(3)), (text_px, text_px * 2))
    fields = ["PASSPORT  P  UTOPIA", "ERIKSSON", "ANNA MARIA", "UTOPIAN", "12 AUG 1974   F", "ZENITH", "15 APR 2012"]
    for i, line in enumerate(fields):
        draw.text((width // 4 + 2 * text_px, text_px * (2 + 2 * i)), line, fill=20, font=font)
    mrz = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
    for i, line in enumerate(mrz):
        draw.text((text_px, height - text_px * (5 - 2 * i)), line, fill=10, font=mrz_font)
    return np.asarray(page, dtype=np.uint8).copy()


DEGRADATIONS = ("clean", "blur", "noise", "low-contrast", "all")


def degrade(frame: np.ndarray, degradation: str, *, seed: int = 0) -> np.ndarray:
    """Apply one named camera degradation to a whole frame."""
    if degradation == "clean":
        return frame
    if degradation == "blur":
        return blur(frame, 1.0)
    if degradation == "noise":
        return noise(frame, 12.0, seed=seed)
    if degradation == "low-contrast":
        return low_contrast(frame, 80, 160)
    if degradation == "all":
        return noise(low_contrast(blur(frame, 0.8), 70, 180), 8.0, seed=seed)
    raise ValueError(f"unknown degradation {degradation!r}; expected one of {DEGRADATIONS}")


@dataclass(frozen=True)
class Case:
    """One generated frame with its exact expected payload."""

    name: str
    symbology: str
    payload: bytes
    skew: float
    degradation: str
    module_px: int = 3
    size: tuple[int, int] = FRAME_SIZE
    quarter_turn: bool = False  # the whole frame turned 90 degrees: a card held upright

    def frame(self) -> np.ndarray:
        seed = sum(self.name.encode()) + int(self.skew * 10) + DEGRADATIONS.index(self.degradation)
        code = render(self.payload, self.symbology, module_px=self.module_px)
        frame = degrade(place_in_frame(code, skew=self.skew, size=self.size, seed=seed), self.degradation, seed=seed)
        return np.ascontiguousarray(np.rot90(frame)) if self.quarter_turn else frame

    @property
    def id(self) -> str:
        turn = "-quarter" if self.quarter_turn else ""
        return f"{self.symbology}-{self.name}-{self.skew:+g}deg-{self.degradation}-m{self.module_px}{turn}"


SKEWS = tuple(range(-15, 16, 5))  # every 5 degrees from -15 to +15


def degraded_corpus(
    *,
    skews: tuple[float, ...] = SKEWS,
    degradations: tuple[str, ...] = DEGRADATIONS,
    module_sizes: tuple[int, ...] = (3,),
    symbologies: tuple[str, ...] = ("PDF417", "Aztec", "QRCode"),
    quarter_turn: bool = False,
) -> list[Case]:
    """The generated corpus: licence PDF417 and boarding-pass Aztec/QR, skewed and degraded.

    ``module_px`` is the PDF417 module size; Aztec and QR get one pixel more,
    as a phone screen shows them larger than a licence prints its PDF417.
    """
    cases: list[Case] = []
    for module_px in module_sizes:
        for skew in skews:
            for degradation in degradations:
                if "PDF417" in symbologies:
                    for name, payload in AAMVA_PAYLOADS.items():
                        cases.append(Case(name, "PDF417", payload, skew, degradation, module_px, quarter_turn=quarter_turn))
                for name, payload in BCBP_PAYLOADS.items():
                    for symbology in ("Aztec", "QRCode"):
                        if symbology in symbologies:
                            cases.append(
                                Case(name, symbology, payload, skew, degradation, module_px + 1, quarter_turn=quarter_turn)
                            )
    return cases


# --------------------------------------------------------------------------- script


def render_payload_file(source: str | Path, destination: str | Path, *, symbology: str = "PDF417", module_px: int = 3) -> Path:
    """Render the exact bytes of a payload file into a clean PNG (for appliance samples).

    The file is read as bytes, so AAMVA LF/RS/CR and any Latin-1 text survive.
    """
    payload = Path(source).read_bytes()
    code = render(payload, symbology, module_px=module_px)
    border = 8 * module_px
    padded = np.pad(code, border, constant_values=255)
    destination = Path(destination)
    Image.fromarray(padded).save(destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render a barcode payload file into a PNG.")
    parser.add_argument("payload", type=Path, help="file holding the exact payload bytes")
    parser.add_argument("output", type=Path, help="PNG to write")
    parser.add_argument("--symbology", default="PDF417", choices=("PDF417", "Aztec", "QRCode", "DataMatrix", *LINEAR_PAYLOADS))
    parser.add_argument("--module-px", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        out = render_payload_file(args.payload, args.output, symbology=args.symbology, module_px=args.module_px)
    except OSError as exc:
        parser.error(f"{exc.filename}: {exc.strerror}")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
