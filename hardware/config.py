"""The scanner daemon's settings: the ``[scanner]`` table of the device's gatecheck.toml.

Validated on load, like the rest of the file (appliance/config.py), with
errors that name the key: ``gatecheck.toml: scanner.sources[2].fps must be
a number from 0.5 to 60, got 'fast'``. Each source's options are checked
here; building the source objects is :func:`build_source`'s job, so that a
driver's own checks (a serial framing that cannot end a read) also come
back as one line naming the source.

The daemon only ever talks to the appliance on this machine: the scanner
token opens POST /api/scan, and must not cross a network (docs/counter.md).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import urlsplit

from appliance.config import CONFIG_FILE, ConfigError, DeviceConfig, is_loopback_host, load_config

TABLE = "scanner"
#: A queued scan is a person at the counter waiting: a few, never a backlog (hardware/daemon.py).
DEFAULT_QUEUE_SIZE = 5
MAX_QUEUE_SIZE = 50
DEFAULT_TIMEOUT_SECONDS = 10.0
KINDS = ("serial", "keyboard", "camera", "replay")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_WILDCARD = {"0.0.0.0", "::", ""}


@dataclass(frozen=True)
class SourceConfig:
    """One ``[[scanner.sources]]`` entry: its kind, its name and its checked options."""

    kind: str
    name: str
    key: str  # "scanner.sources[0]", for error messages
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class IndicatorPins:
    """``[scanner.indicators]``: gpiozero pin names, or None for an output that is not fitted."""

    green: int | str | None = None
    red: int | str | None = None
    buzzer: int | str | None = None
    active_high: bool = True

    @property
    def any(self) -> bool:
        return any(pin is not None for pin in (self.green, self.red, self.buzzer))


@dataclass(frozen=True)
class ScannerConfig:
    data_dir: Path
    appliance_url: str
    token_file: Path
    queue_size: int = DEFAULT_QUEUE_SIZE
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    sources: tuple[SourceConfig, ...] = ()
    indicators: IndicatorPins = IndicatorPins()


def load_scanner_config(data_dir: Path | None = None, env: Mapping[str, str] | None = None) -> ScannerConfig:
    """The device config (for its data dir, host and port) plus its checked ``[scanner]`` table.

    Raises ConfigError (appliance/config.py) naming the key.
    """
    device = load_config(data_dir, env)
    try:
        data = tomllib.loads(device.config_path.read_text("utf-8"))
    except FileNotFoundError:
        data = {}
    # Anything else (unreadable, not TOML) was already refused by load_config.
    table = data.get(TABLE, {})
    return parse_scanner_table(table, device)


def parse_scanner_table(table: Any, device: DeviceConfig) -> ScannerConfig:
    if not isinstance(table, dict):
        raise _error(TABLE, f"must be a table ([scanner]), got {table!r}")
    _known(table, TABLE, {"appliance_url", "token_file", "queue_size", "timeout_seconds", "sources",
                          "indicators"})
    url = _appliance_url(table.get("appliance_url"), device)
    token_file = _path(table.get("token_file", "api-token"), "scanner.token_file", device.data_dir)
    queue_size = _int(table.get("queue_size", DEFAULT_QUEUE_SIZE), "scanner.queue_size", 1, MAX_QUEUE_SIZE)
    timeout = _number(table.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS), "scanner.timeout_seconds", 1, 120)
    raw_sources = table.get("sources", [])
    if not isinstance(raw_sources, list) or not all(isinstance(s, dict) for s in raw_sources):
        raise _error("scanner.sources", "must be an array of tables ([[scanner.sources]])")
    sources = tuple(_source(entry, f"scanner.sources[{i}]", device.data_dir) for i, entry in enumerate(raw_sources))
    names = [s.name for s in sources]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise _error(f"scanner.sources[{i}].name", f"{name!r} is used by another source; names must differ")
    return ScannerConfig(data_dir=device.data_dir, appliance_url=url, token_file=token_file,
                         queue_size=queue_size, timeout_seconds=timeout, sources=sources,
                         indicators=_indicators(table.get("indicators", {})))


# -- the appliance ------------------------------------------------------------


def _appliance_url(value: Any, device: DeviceConfig) -> str:
    key = "scanner.appliance_url"
    if value is None:
        host = device.host
        if host in _WILDCARD:
            host = "127.0.0.1"  # listening everywhere includes loopback
        if not is_loopback_host(host):
            raise _error(key, f"has no default: the counter app listens on {host}, not on this machine's "
                              "loopback; set host to 127.0.0.1 or 0.0.0.0")
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{device.port}"
    if not isinstance(value, str):
        raise _error(key, f"must be a URL such as 'http://127.0.0.1:8470', got {value!r}")
    parts = urlsplit(value.strip())
    if parts.scheme != "http" or not parts.hostname:
        raise _error(key, f"must be an http:// URL of the counter app on this machine, got {value!r}")
    if not is_loopback_host(parts.hostname):
        # The scanner token would travel in clear across a network.
        raise _error(key, f"must be on this machine (127.0.0.1, ::1 or localhost), not {parts.hostname!r}")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise _error(key, "must be just scheme, host and port, such as 'http://127.0.0.1:8470'")
    try:
        parts.port
    except ValueError:
        raise _error(key, f"has an invalid port: {value!r}") from None
    return value.strip().rstrip("/")


# -- sources ------------------------------------------------------------------


_COMMON = {"kind", "name"}
_SERIAL = {"port", "baudrate", "bytesize", "parity", "stopbits", "suffix", "prefix", "idle_seconds",
           "max_bytes", "reconnect_seconds"}
_KEYBOARD = {"device", "layout", "enter", "encoding", "suffix", "prefix", "idle_seconds", "max_bytes",
             "reconnect_seconds"}
_CAMERA = {"device", "fps", "capture_fps", "width", "height", "hold_seconds", "loop", "retry_seconds"}
_REPLAY = {"path", "interval_seconds", "loop"}
_ALLOWED = {"serial": _SERIAL, "keyboard": _KEYBOARD, "camera": _CAMERA, "replay": _REPLAY}


def _source(entry: dict, key: str, data_dir: Path) -> SourceConfig:
    kind = entry.get("kind")
    if kind not in KINDS:
        raise _error(f"{key}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    _known(entry, key, _COMMON | _ALLOWED[kind])
    index = key[key.index("[") + 1:-1]
    name = entry.get("name", f"{kind}-{index}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _error(f"{key}.name", "must be letters, digits, '.', '_' or '-' (at most 64)")
    options = {k: v for k, v in entry.items() if k not in _COMMON}
    checked = {"serial": _serial, "keyboard": _keyboard, "camera": _camera, "replay": _replay}[kind](
        options, key, data_dir)
    return SourceConfig(kind=kind, name=name, key=key, options=MappingProxyType(checked))


def _framing_options(options: dict, key: str) -> dict:
    out: dict[str, Any] = {}
    for which in ("suffix", "prefix"):
        if which in options:
            if not isinstance(options[which], str):
                raise _error(f"{key}.{which}", f"must be cr, lf, crlf, none or hex bytes like '04', "
                                               f"got {options[which]!r}")
            out[which] = options[which]
    if "idle_seconds" in options:
        value = options["idle_seconds"]
        if value is False or (isinstance(value, str) and value.strip().lower() == "none"):
            out["idle_seconds"] = None
        else:
            out["idle_seconds"] = _number(value, f"{key}.idle_seconds", 0.001, 60)
    if "max_bytes" in options:
        out["max_bytes"] = _int(options["max_bytes"], f"{key}.max_bytes", 16, 1 << 20)
    if "reconnect_seconds" in options:
        out["reconnect_seconds"] = _number(options["reconnect_seconds"], f"{key}.reconnect_seconds", 0.1, 3600)
    return out


def _serial(options: dict, key: str, data_dir: Path) -> dict:
    if not isinstance(options.get("port"), str) or not options["port"].strip():
        raise _error(f"{key}.port", "must be the scanner's device path, such as '/dev/gatecheck-scanner-serial'")
    out = {"port": options["port"].strip(), **_framing_options(options, key)}
    if "baudrate" in options:
        out["baudrate"] = _int(options["baudrate"], f"{key}.baudrate", 50, 4_000_000)
    if "bytesize" in options:
        out["bytesize"] = _int(options["bytesize"], f"{key}.bytesize", 5, 8)
    if "parity" in options:
        if not isinstance(options["parity"], str):
            raise _error(f"{key}.parity", f"must be none, even, odd, mark or space, got {options['parity']!r}")
        out["parity"] = options["parity"].strip().lower()
    if "stopbits" in options:
        out["stopbits"] = _number(options["stopbits"], f"{key}.stopbits", 1, 2)
    return out


def _keyboard(options: dict, key: str, data_dir: Path) -> dict:
    if not isinstance(options.get("device"), str) or not options["device"].strip():
        raise _error(f"{key}.device", "must be the scanner's input device, such as '/dev/gatecheck-scanner-kbd'")
    out = {"device": options["device"].strip(), **_framing_options(options, key)}
    for which, what in (("layout", "a keymap name such as 'us'"), ("enter", "'end' or 'cr'"),
                        ("encoding", "a text encoding such as 'utf-8'")):
        if which in options:
            if not isinstance(options[which], str) or not options[which].strip():
                raise _error(f"{key}.{which}", f"must be {what}, got {options[which]!r}")
            out[which] = options[which].strip()
    return out


def _camera(options: dict, key: str, data_dir: Path) -> dict:
    device = options.get("device")
    if isinstance(device, bool) or not isinstance(device, (int, str)) or device == "" or (
            isinstance(device, int) and not 0 <= device <= 63):
        raise _error(f"{key}.device", "must be a camera index (0 for /dev/video0), a device path, "
                                      "a video file or a stream URL")
    if isinstance(device, str):
        device = device.strip()
        if "://" in device:
            scheme = device.split("://", 1)[0].lower()
            if scheme not in ("rtsp", "rtsps", "http", "https"):
                raise _error(f"{key}.device", f"has an unsupported stream scheme {scheme!r} (rtsp, http, https)")
        elif not device.startswith("/dev/"):
            path = _path(device, f"{key}.device", data_dir)
            if not path.is_file():
                raise _error(f"{key}.device", f"names no video file: {path}")
            device = str(path)
    out: dict[str, Any] = {"device": device}
    if "fps" in options:
        out["fps"] = _number(options["fps"], f"{key}.fps", 0.5, 60)
    if "capture_fps" in options:
        out["capture_fps"] = _number(options["capture_fps"], f"{key}.capture_fps", 1, 120)
    if ("width" in options) != ("height" in options):
        raise _error(f"{key}.{'height' if 'width' in options else 'width'}", "is needed with the other: "
                     "give both width and height, or neither")
    if "width" in options:
        out["width"] = _int(options["width"], f"{key}.width", 160, 7680)
        out["height"] = _int(options["height"], f"{key}.height", 120, 4320)
    if "hold_seconds" in options:
        out["hold_seconds"] = _number(options["hold_seconds"], f"{key}.hold_seconds", 0.1, 60)
    if "retry_seconds" in options:
        out["retry_seconds"] = _number(options["retry_seconds"], f"{key}.retry_seconds", 0.1, 3600)
    if "loop" in options:
        out["loop"] = _bool(options["loop"], f"{key}.loop")
    return out


def _replay(options: dict, key: str, data_dir: Path) -> dict:
    raw = options.get("path")
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(item, str) and item.strip() for item in items):
        raise _error(f"{key}.path", "must be a directory of sample documents, or a list of files")
    out: dict[str, Any] = {"paths": [_path(item, f"{key}.path", data_dir) for item in items]}
    if "interval_seconds" in options:
        out["interval_seconds"] = _number(options["interval_seconds"], f"{key}.interval_seconds", 0.05, 3600)
    if "loop" in options:
        out["loop"] = _bool(options["loop"], f"{key}.loop")
    return out


def build_source(source: SourceConfig):
    """The Source object for one entry; a driver's own refusal becomes a ConfigError naming it."""
    options = dict(source.options)
    try:
        if source.kind == "camera":
            from hardware.camera_source import CameraSource

            return CameraSource(source.name, options.pop("device"), **options)
        if source.kind == "replay":
            from hardware.replay_source import ReplaySource

            return ReplaySource(source.name, options.pop("paths"), **options)
        if source.kind == "serial":
            from hardware.serial_source import SerialSource

            port = options.pop("port")
            return SerialSource(source.name, port, framing=_framing(options, None), **options)
        from hardware.keyboard_source import DEFAULT_FRAMING, KeyboardSource

        device = options.pop("device")
        return KeyboardSource(source.name, device, framing=_framing(options, DEFAULT_FRAMING), **options)
    except ImportError as exc:
        raise _error(source.key, f"needs the hardware extra ({exc.name or exc} is missing): "
                                 "pip install 'gatecheck-appliance[hardware]'") from None
    except ValueError as exc:  # the drivers' own checks (FramingError, ReplayError are ValueErrors)
        raise _error(source.key, str(exc)) from None


def _framing(options: dict, base):
    """Pop the framing keys into a hardware/framing.py Framing (the drivers' own type).

    Keys not given keep the driver's default (``base``, or Framing()'s own);
    with none given the driver chooses (None).
    """
    from hardware.framing import Framing, parse_bytes_option

    fields: dict[str, Any] = {}
    for which in ("suffix", "prefix"):
        if which in options:
            fields[which] = parse_bytes_option(options.pop(which))
    for which in ("idle_seconds", "max_bytes"):
        if which in options:
            fields[which] = options.pop(which)
    if not fields:
        return None
    return replace(base, **fields) if base is not None else Framing(**fields)


# -- indicators ---------------------------------------------------------------


def _indicators(table: Any) -> IndicatorPins:
    key = "scanner.indicators"
    if not isinstance(table, dict):
        raise _error(key, "must be a table ([scanner.indicators])")
    _known(table, key, {"green", "red", "buzzer", "active_high"})
    pins: dict[str, Any] = {}
    for name in ("green", "red", "buzzer"):
        if name not in table:
            continue
        pin = table[name]
        if isinstance(pin, int) and not isinstance(pin, bool) and 0 <= pin <= 53:
            pins[name] = pin
        elif isinstance(pin, str) and re.fullmatch(r"(GPIO|BCM|BOARD|J8:|WPI)?[0-9]{1,2}", pin.strip()):
            pins[name] = pin.strip()
        else:
            raise _error(f"{key}.{name}", f"must be a GPIO number (17) or a gpiozero pin name "
                                          f"('GPIO17', 'BOARD11'), got {pin!r}")
    taken: dict[str, str] = {}
    for name, pin in pins.items():
        if str(pin) in taken:
            raise _error(f"{key}.{name}", f"pin {pin!r} is already the {taken[str(pin)]} output's")
        taken[str(pin)] = name
    active_high = _bool(table.get("active_high", True), f"{key}.active_high")
    return IndicatorPins(**pins, active_high=active_high)


# -- value checks -------------------------------------------------------------


def _error(key: str, problem: str) -> ConfigError:
    return ConfigError(CONFIG_FILE, key, problem)


def _known(table: dict, key: str, allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _error(f"{key}.{unknown[0]}", f"is not a setting here (known: {', '.join(sorted(allowed))})")


def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _error(key, f"must be a whole number from {low} to {high}, got {value!r}")
    return value


def _number(value: Any, key: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise _error(key, f"must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _error(key, f"must be true or false, got {value!r}")
    return value


def _path(value: Any, key: str, data_dir: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _error(key, f"must be a path, got {value!r}")
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else data_dir / path
