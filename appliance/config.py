"""Device configuration: `<data_dir>/gatecheck.toml`, then GATECHECK_* environment overrides.

Validated on load, so a typo stops the device at start-up with one line that
names the key and the problem, instead of a counter silently checking the
wrong lists. The file format is in docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from appliance.verdict import DEFAULT_MAX_AGE, DeviceProfile

CONFIG_FILE = "gatecheck.toml"
#: Tables in the same file that other components read and validate (hardware/config.py reads [scanner]).
OTHER_TABLES = frozenset({"scanner"})

#: Sanction scopes a list can carry and a device can check.
KNOWN_SCOPES = frozenset({"air_travel", "star_hotel"})

# werkzeug.security.generate_password_hash output: "method$salt$hash", where
# method is e.g. "scrypt:32768:8:1" or "pbkdf2:sha256:600000".
_PASSWORD_HASH = re.compile(r"(scrypt|pbkdf2)(:[a-z0-9:]+)?\$[^$\s]+\$[0-9a-f]+")
_OPERATOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ConfigError(Exception):
    """A configuration problem, as one line naming where, which key and what is wrong."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key} " if key else f"{source}: "
        super().__init__(where + problem)


@dataclass(frozen=True)
class DeviceConfig:
    """Everything a counter device is told about itself; defaults suit an airline counter."""

    data_dir: Path
    scopes: frozenset[str] = frozenset({"air_travel"})
    max_age: timedelta = DEFAULT_MAX_AGE
    fail_closed: bool = True
    journal_clear_days: int = 30
    journal_match_days: int = 365
    host: str = "127.0.0.1"
    port: int = 8470
    #: operator id -> werkzeug password hash of the operator's PIN.
    operators: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: operators who may flag a passenger (docs/counter.md); nobody unless granted.
    reporters: frozenset[str] = frozenset()

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    def profile(self) -> DeviceProfile:
        """The part of the configuration the verdict rules see."""
        return DeviceProfile(scopes=self.scopes, max_age=self.max_age, fail_closed=self.fail_closed)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1): reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """$GATECHECK_HOME, else $XDG_DATA_HOME/gatecheck, else ~/.local/share/gatecheck.

    XDG Base Directory: a relative $XDG_DATA_HOME is invalid and is ignored.
    """
    env = os.environ if env is None else env
    if env.get("GATECHECK_HOME"):
        return Path(env["GATECHECK_HOME"]).expanduser()
    xdg = env.get("XDG_DATA_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "gatecheck"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "share" / "gatecheck"


def load_config(data_dir: Path | None = None, env: Mapping[str, str] | None = None) -> DeviceConfig:
    """Read the data dir's gatecheck.toml (if any), apply GATECHECK_* overrides, validate.

    Raises ConfigError. A missing file means all defaults; unknown keys in
    the file are errors (a misspelt ``fail_close`` must not pass silently).
    """
    env = os.environ if env is None else env
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir(env)
    values: dict[str, Any] = {}
    origin: dict[str, tuple[str, str]] = {}  # key -> (source, name) its value came from
    for key, value in _read_file(data_dir / CONFIG_FILE).items():
        if key in OTHER_TABLES:
            continue
        values[key] = _FILE_KEYS[key](CONFIG_FILE, key, value)
        origin[key] = (CONFIG_FILE, key)
    for key, convert in _ENV_KEYS.items():
        name = "GATECHECK_" + key.upper()
        if name in env:
            values[key] = convert("environment", name, env[name])
            origin[key] = ("environment", name)
    if "max_age_hours" in values:
        values["max_age"] = timedelta(hours=values.pop("max_age_hours"))
    config = DeviceConfig(data_dir=data_dir, **values)
    unknown = sorted(config.reporters - set(config.operators))
    if unknown:
        # A grant for an id nobody signs in as is a typo, or a stale grant that
        # the next operator given that id would inherit unnoticed.
        source, name = origin["reporters"]
        raise ConfigError(source, name,
                          f"names {unknown[0]!r}, who is not a configured operator (see [operators])")
    return config


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot be read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(CONFIG_FILE, None, "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(CONFIG_FILE, None, f"is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_FILE_KEYS) - OTHER_TABLES)
    if unknown:
        raise ConfigError(CONFIG_FILE, unknown[0],
                          f"is not a setting (known: {', '.join(sorted(_FILE_KEYS))})")
    if data.get("operators") and path.stat().st_mode & 0o077:
        # PINs are short: anyone who can read the hashes can try them all offline.
        raise ConfigError(CONFIG_FILE, "operators",
                          f"holds PIN hashes but the file is readable by other users; "
                          f"run: chmod 600 {path}")
    return data


# Each converter takes (source, key, raw value) and returns the checked value.
# File values arrive typed by TOML; environment values are always strings.

def _scopes(source: str, key: str, value: Any) -> frozenset[str]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise ConfigError(source, key, f"must be a list of scope names, got {value!r}")
    if not items:
        raise ConfigError(source, key, f"must name at least one scope ({_known()})")
    for item in items:
        if item not in KNOWN_SCOPES:
            raise ConfigError(source, key, f"has unknown scope {item!r} (known: {_known()})")
    return frozenset(items)


_MAX_HOURS = 24 * 366 * 10


def _positive_hours(source: str, key: str, value: Any) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise ConfigError(source, key, f"must be a positive number, got {value!r}")
    if number > _MAX_HOURS:
        raise ConfigError(source, key, f"must be at most {_MAX_HOURS} hours (10 years), got {value!r}")
    return number


def _boolean(source: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in {"1", "true", "yes", "on"}:
            return True
        if word in {"0", "false", "no", "off"}:
            return False
    raise ConfigError(source, key, f"must be true or false, got {value!r}")


def _integer(low: int, high: int | None, what: str) -> Callable[[str, str, Any], int]:
    def convert(source: str, key: str, value: Any) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"[ \t]*[0-9]+[ \t]*", value):
            # ASCII digits and blanks only: \s and \d also match what int() refuses ("0\x1f")
            number = int(value)
        if number is None or number < low or (high is not None and number > high):
            raise ConfigError(source, key, f"must be {what}, got {value!r}")
        return number
    return convert


def _host(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or any(ch.isspace() for ch in value.strip()):
        raise ConfigError(source, key, f"must be a host name or IP address, got {value!r}")
    return value.strip()


def _operators(source: str, key: str, value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(source, key, f"must be a table of operator id = PIN hash, got {value!r}")
    checked: dict[str, str] = {}
    for operator, pin_hash in value.items():
        where = f"{key}.{operator}"
        if operator in _FILE_KEYS and not isinstance(pin_hash, str):
            # TOML puts every key after "[operators]" in that table.
            raise ConfigError(source, where, f"looks like the setting {operator!r}: "
                                             "move it above the [operators] table")
        if not _OPERATOR_ID.fullmatch(operator):
            raise ConfigError(source, where,
                              "is not a valid operator id (letters, digits, '.', '_', '-'; at most 64)")
        # Never echo the value: it may be a PIN typed in by mistake.
        if not isinstance(pin_hash, str) or not _PASSWORD_HASH.fullmatch(pin_hash):
            raise ConfigError(source, where, "must be a PIN hash from werkzeug's generate_password_hash, "
                                             "never the PIN itself")
        checked[operator] = pin_hash
    return MappingProxyType(checked)


def _reporters(source: str, key: str, value: Any) -> frozenset[str]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise ConfigError(source, key, f"must be a list of operator ids, got {value!r}")
    for item in items:
        if not _OPERATOR_ID.fullmatch(item):
            raise ConfigError(source, key, f"has {item!r}, which is not a valid operator id")
    return frozenset(items)


def _known() -> str:
    return ", ".join(sorted(KNOWN_SCOPES))


_ENV_KEYS: dict[str, Callable[[str, str, Any], Any]] = {
    "scopes": _scopes,
    "max_age_hours": _positive_hours,
    "fail_closed": _boolean,
    "journal_clear_days": _integer(1, None, "a whole number of days, at least 1"),
    "journal_match_days": _integer(1, None, "a whole number of days, at least 1"),
    "host": _host,
    "port": _integer(1, 65535, "a port number from 1 to 65535"),
    "reporters": _reporters,
}
_FILE_KEYS: dict[str, Callable[[str, str, Any], Any]] = {**_ENV_KEYS, "operators": _operators}
