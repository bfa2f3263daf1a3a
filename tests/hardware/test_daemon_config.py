"""The [scanner] table of gatecheck.toml: defaults, every source kind, and one line naming each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigError, load_config
from hardware.camera_source import CameraSource
from hardware.config import build_source, load_scanner_config
from hardware.replay_source import ReplaySource
from tests.appliance.conftest import SAMPLES


def config_with(data_dir: Path, text: str):
    (data_dir / "gatecheck.toml").write_text(text)
    return load_scanner_config(data_dir, env={})


def refused(data_dir: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        config_with(data_dir, text)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("gatecheck.toml: ")
    return message


def test_without_a_scanner_table_the_daemon_posts_to_the_counter_app_of_this_device(tmp_path):
    config = config_with(tmp_path, "port = 8471\n")
    assert config.appliance_url == "http://127.0.0.1:8471"
    assert config.token_file == tmp_path / "api-token"
    assert config.queue_size == 5 and config.sources == () and not config.indicators.any


def test_the_device_settings_still_load_beside_a_scanner_table(tmp_path):
    config_with(tmp_path, 'scopes = ["star_hotel"]\n[scanner]\nqueue_size = 3\n')
    assert load_config(tmp_path, env={}).scopes == {"star_hotel"}


def test_a_counter_app_listening_everywhere_is_reached_on_loopback(tmp_path):
    assert config_with(tmp_path, 'host = "0.0.0.0"\n').appliance_url == "http://127.0.0.1:8470"


def test_every_source_kind_is_read_with_its_options(tmp_path):
    video = tmp_path / "counter.avi"
    video.write_bytes(b"")
    config = config_with(tmp_path, f"""
[scanner]
appliance_url = "http://localhost:9000"
queue_size = 8

[[scanner.sources]]
kind = "serial"
name = "front"
port = "/dev/gatecheck-scanner"
baudrate = 115200
suffix = "04"
idle_seconds = false

[[scanner.sources]]
kind = "keyboard"
device = "/dev/gatecheck-scanner-kbd"
layout = "de"

[[scanner.sources]]
kind = "camera"
name = "desk-cam"
device = "counter.avi"
fps = 8
capture_fps = 15
width = 1280
height = 720

[[scanner.sources]]
kind = "replay"
path = "{SAMPLES}"
interval_seconds = 2.5

[scanner.indicators]
green = 17
red = "GPIO27"
buzzer = 22
""")
    assert config.appliance_url == "http://localhost:9000" and config.queue_size == 8
    serial, keyboard, camera, replay = config.sources
    assert (serial.kind, serial.name, dict(serial.options)) == ("serial", "front", {
        "port": "/dev/gatecheck-scanner", "baudrate": 115200, "suffix": "04", "idle_seconds": None})
    assert (keyboard.name, keyboard.options["layout"]) == ("keyboard-1", "de")
    assert dict(camera.options) == {"device": str(video), "fps": 8.0, "capture_fps": 15.0, "width": 1280,
                                    "height": 720}
    assert (config.indicators.green, config.indicators.red, config.indicators.buzzer) == (17, "GPIO27", 22)

    pytest.importorskip("serial")
    pytest.importorskip("evdev")
    built = build_source(serial)
    assert (built.port, built.baudrate, built.framing.suffix, built.framing.idle_seconds) == (
        "/dev/gatecheck-scanner", 115200, b"\x04", None)
    built = build_source(keyboard)
    assert (built.device, built.layout, built.framing.idle_seconds) == ("/dev/gatecheck-scanner-kbd", "de", 0.5)
    built = build_source(camera)
    assert isinstance(built, CameraSource) and (built.fps, built.capture_fps, built.width, built.is_file) == (
        8.0, 15.0, 1280, True)
    built = build_source(replay)
    assert isinstance(built, ReplaySource) and built.interval == 2.5 and built.files[0].parent == SAMPLES


def test_serial_framing_options_reach_the_driver(tmp_path):
    pytest.importorskip("serial")
    config = config_with(tmp_path, """
[[scanner.sources]]
kind = "serial"
port = "/dev/ttyACM0"
suffix = "crlf"
prefix = "02"
idle_seconds = 0.2
""")
    source = build_source(config.sources[0])
    assert (source.framing.suffix, source.framing.prefix, source.framing.idle_seconds) == (b"\r\n", b"\x02", 0.2)


@pytest.mark.parametrize("text, key, problem", [
    ('[scanner]\nappliance_url = "http://192.0.2.10:8470"\n', "scanner.appliance_url", "must be on this machine"),
    ('[scanner]\nappliance_url = "https://127.0.0.1:8470"\n', "scanner.appliance_url", "http:// URL"),
    ('[scanner]\nappliance_url = "http://u:p@127.0.0.1:8470"\n', "scanner.appliance_url", "just scheme"),
    ('host = "192.0.2.10"\n', "scanner.appliance_url", "has no default"),
    ("[scanner]\nqueue_size = 0\n", "scanner.queue_size", "from 1 to 50"),
    ("[scanner]\nqueu_size = 5\n", "scanner.queu_size", "is not a setting"),
    ('[scanner]\nsources = "serial"\n', "scanner.sources", "array of tables"),
    ('[[scanner.sources]]\nkind = "bluetooth"\n', "scanner.sources[0].kind", "must be one of"),
    ('[[scanner.sources]]\nkind = "serial"\n', "scanner.sources[0].port", "device path"),
    ('[[scanner.sources]]\nkind = "serial"\nport = "/dev/x"\nbaud = 9600\n', "scanner.sources[0].baud",
     "is not a setting"),
    ('[[scanner.sources]]\nkind = "camera"\ndevice = 0\nfps = "fast"\n', "scanner.sources[0].fps",
     "from 0.5 to 60"),
    ('[[scanner.sources]]\nkind = "camera"\ndevice = 0\ncapture_fps = 500\n', "scanner.sources[0].capture_fps",
     "from 1 to 120"),
    ('[[scanner.sources]]\nkind = "camera"\ndevice = 0\nwidth = 640\n', "scanner.sources[0].height",
     "both width and height"),
    ('[[scanner.sources]]\nkind = "camera"\ndevice = "missing.avi"\n', "scanner.sources[0].device",
     "names no video file"),
    ('[[scanner.sources]]\nkind = "camera"\ndevice = "ftp://cam/x"\n', "scanner.sources[0].device",
     "unsupported stream scheme"),
    ('[[scanner.sources]]\nkind = "replay"\n', "scanner.sources[0].path", "directory of sample documents"),
    ('[[scanner.sources]]\nkind = "camera"\nname = "a"\ndevice = 0\n[[scanner.sources]]\nkind = "camera"\n'
     'name = "a"\ndevice = 1\n', "scanner.sources[1].name", "used by another source"),
    ("[scanner.indicators]\ngreen = 17\nred = 17\n", "scanner.indicators.red", "already the green output's"),
    ('[scanner.indicators]\nbuzzer = "pin seventeen"\n', "scanner.indicators.buzzer", "GPIO number"),
    ("[scanner.indicators]\ngreen = 17\nblue = 5\n", "scanner.indicators.blue", "is not a setting"),
])
def test_each_mistake_is_one_line_naming_the_key(tmp_path, text, key, problem):
    message = refused(tmp_path, text)
    assert message.startswith(f"gatecheck.toml: {key} "), message
    assert problem in message


def test_a_driver_refusal_names_the_source(tmp_path):
    config = config_with(tmp_path, '[[scanner.sources]]\nkind = "replay"\npath = "nothing-here"\n')
    with pytest.raises(ConfigError, match=r"^gatecheck.toml: scanner.sources\[0\] .*no such file"):
        build_source(config.sources[0])


def test_a_serial_framing_that_never_ends_a_read_is_refused_naming_the_source(tmp_path):
    pytest.importorskip("serial")
    config = config_with(tmp_path, '[[scanner.sources]]\nkind = "serial"\nport = "/dev/x"\nidle_seconds = false\n')
    with pytest.raises(ConfigError, match=r"scanner.sources\[0\] .*reads never end"):
        build_source(config.sources[0])


def test_the_examples_in_the_docs_load(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    scanners = (repo / "docs" / "scanners.md").read_text().split("\n## Configuration\n", 1)[1]
    example = scanners.split("```toml\n", 1)[1].split("```", 1)[0]
    config = config_with(tmp_path, example)
    assert [s.kind for s in config.sources] == ["serial", "camera"] and config.indicators.buzzer == 22
    configuration = (repo / "docs" / "configuration.md").read_text().split("\n## Scanner\n", 1)[1]
    example = configuration.split("```toml\n", 1)[1].split("```", 1)[0]
    assert config_with(tmp_path, example).sources[0].options["port"] == "/dev/gatecheck-scanner-serial"
