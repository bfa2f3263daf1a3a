"""Real photographs from zxing-cpp's black-box samples: we never read less than bare zxing-cpp.

The corpus lives beside the repository (``../shared/corpus/zxing-samples``) and is
never copied into it; where it is absent the whole module is skipped. Each
``NAME.png|webp|jpg`` has its exact payload in ``NAME.txt`` (UTF-8 text, no
trailing newline) or ``NAME.bin`` (raw bytes).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from appliance.decode import ImageDecoder

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus" / "zxing-samples"
IMAGE_SUFFIXES = (".png", ".webp", ".jpg")

if not CORPUS.is_dir():
    pytest.skip(f"zxing sample corpus not found at {CORPUS}", allow_module_level=True)

pytestmark = pytest.mark.corpus


def _samples() -> list[Path]:
    return sorted(
        p
        for p in CORPUS.glob("*/*")
        if p.suffix in IMAGE_SUFFIXES and (p.with_suffix(".txt").exists() or p.with_suffix(".bin").exists())
    )


def _expected(image: Path) -> bytes:
    text = image.with_suffix(".txt")
    return text.read_bytes() if text.exists() else image.with_suffix(".bin").read_bytes()


def _matches(expected: bytes, payload: bytes, text: str) -> bool:
    """The raw bytes, or the text as UTF-8 (ECI and Shift_JIS symbols: NAME.txt holds the transcoded text)."""
    return payload == expected or text.encode("utf-8") == expected


DECODER = ImageDecoder()


@pytest.mark.parametrize("turn", [0, 90], ids=["upright", "turned-90"])
@pytest.mark.parametrize("image", _samples(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_bare_zxing_reads_is_read_by_us_too(image, turn):
    expected = _expected(image)
    with Image.open(image) as opened:
        picture = opened.rotate(turn, expand=True) if turn else opened.copy()

    bare = zxingcpp.read_barcodes(picture, text_mode=zxingcpp.TextMode.Plain)
    if not any(_matches(expected, bytes(r.bytes), r.text) for r in bare):
        return  # not a promise bare zxing-cpp keeps either; docs/decoding.md lists these

    ours = DECODER.decode(picture)

    assert any(_matches(expected, b.payload, b.text) for b in ours), [b.text[:60] for b in ours]


def test_corpus_is_the_one_the_readme_describes():
    folders = {p.parent.name for p in _samples()}

    assert {"pdf417-1", "pdf417-2", "pdf417-3", "aztec-1", "aztec-2", "qrcode-2", "datamatrix-1"} <= folders
    assert len(_samples()) >= 180
