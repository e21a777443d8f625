"""One TOML file configures a terminal; it is validated at start-up with errors that name the key and the fix."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator

from api.patterns import ID_PATTERN

log = logging.getLogger(__name__)

# A kiosk config is a few kilobytes, two levels deep ([section] key = value). Anything far bigger or deeper
# is a wrong file or a hostile one: refuse it before the parser or the validators spend time or stack on it.
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 8

# host[:port] of an https origin: DNS labels (ASCII; IDN as xn--) or an IPv4 address, or [IPv6]
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ORIGIN_NETLOC = re.compile(
    rf"(?:(?P<host>{_LABEL}(?:\.{_LABEL})*)|\[(?P<v6>[0-9A-Fa-f:.]+)\])(?::(?P<port>[0-9]{{1,5}}))?"
)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _origin(v: str, no_scheme: str, *, plain_http: bool = False) -> str:
    """v as scheme://host[:port] (a trailing / dropped), or ValueError naming what is wrong. Strict on purpose:
    the backend client appends /v1/... to it and a receipt QR code prints it, so a path, a query, a
    user:password@, a port out of range or a host no resolver should see is a mistake to refuse at start."""
    for scheme in ("https://", "http://") if plain_http else ("https://",):
        if v.startswith(scheme):
            rest = v[len(scheme) :]
            break
    else:
        raise ValueError(no_scheme)
    netloc, _, tail = rest.partition("/")
    if tail or any(c in rest for c in "?#"):
        raise ValueError("must be an origin only, https://host[:port], with no /path, ?query or #fragment")
    if "@" in netloc:
        raise ValueError("must be https://host[:port] with a host and no user:password@")
    m = _ORIGIN_NETLOC.fullmatch(netloc)
    host = (m["host"] if m is not None else None) or ""
    # digits and dots only (999.1.1.1, 10.1) would be sent to a resolver as a name: it must be a real IPv4
    if m is None or (m["v6"] and not _is_ipv6(m["v6"])) or (host.replace(".", "").isdigit() and not _is_ipv4(host)):
        raise ValueError("must be https://host[:port]: a DNS name (IDN in xn-- form) or an IP address, nothing else")
    if m["port"] is not None and not 1 <= int(m["port"]) <= 65535:
        raise ValueError("must be https://host[:port] with a valid port (1 to 65535)")
    return v.rstrip("/")


# Paths arrive as TOML strings; every other value must already have the right TOML type (strict mode),
# so "yes" is not true, "8" is not 8 and 1 is not true.
_FilePath = Annotated[Path, Strict(False)]


class ConfigError(Exception):
    """Raised with one line per problem: '[section] key: what is wrong — how to fix it'."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Terminal(_Section):
    id: str = Field(pattern=ID_PATTERN, description="terminal id issued at enrolment, e.g. T-370102-0001")
    site_id: str = Field(pattern=ID_PATTERN, description="site (service station) code, e.g. 370102001")
    site_name: str = Field(min_length=1, description="shown on receipts, e.g. 示范镇人社服务站")
    orientation: Literal["landscape", "portrait"] = "landscape"
    locale: Literal["zh_CN", "en"] = "zh_CN"
    dev: bool = False  # cursor visible, insecure backend allowed, dev panel
    elder_mode: bool = True  # start in elder mode: bigger type
    shuffle_keypad: bool = False  # PIN keys in a new order each session, against smudges and onlookers
    voice_volume: int = Field(default=100, ge=0, le=100, description="voice prompts, 0 (silent) to 100")
    voice_clips: str = ""  # a station's recorded prompts (<dir>/<locale>/<msgid>.wav), before the shipped ones
    # state kept between starts: the outbox (outbox.sqlite3 + outbox.key, mode 0600) and the catalog cache
    data_dir: str = Field(default="/var/lib/kiosk", min_length=1, description="the kiosk user's own folder")
    attract_interval: int = Field(default=75, ge=0, le=600, description="idle attract prompt every N s, 0 = off")

    @field_validator("attract_interval")
    @classmethod
    def _gentle(cls, v: int) -> int:
        if 0 < v < 30:
            raise ValueError("must be 0 (off) or 30 to 600 seconds: a prompt every few seconds is noise")
        return v


# A phone number as a villager dials it: digits, with - between groups (12333, 0531-12345678, 13800001234).
PHONE_PATTERN = r"^[0-9](?:[0-9-]{0,18}[0-9])?$"


class Volunteer(_Section):
    name: str = Field(min_length=1, max_length=16, description="shown and spoken as written, e.g. 张秀英")
    phone: str = Field(pattern=PHONE_PATTERN, max_length=20, description="digits and -, e.g. 13800001234")

    @field_validator("name")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if not v.strip() or not v.isprintable():
            raise ValueError("must be a name on one line, without control characters")
        return v.strip()


class Help(_Section):
    """请工作人员帮助: who a resident can call at this station (shown, and spoken digit by digit)."""

    volunteers: list[Volunteer] = Field(default_factory=list, max_length=6)
    station_phone: str = Field(default="", max_length=20, description="the station's own phone, e.g. 0531-12345678")

    @field_validator("station_phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        if v and not re.fullmatch(PHONE_PATTERN, v):
            raise ValueError('must be digits with - between groups (e.g. "0531-12345678"), or "" for none')
        return v


class Backend(_Section):
    url: str = Field(description="https://host:port of the kiosk API")
    ca: _FilePath = Field(description="CA certificate the backend's certificate must chain to (pinned)")
    client_cert: _FilePath | None = None
    client_key: _FilePath | None = None
    connect_timeout: float = Field(default=3.05, gt=0, le=30)
    read_timeout: float = Field(default=8.0, gt=0, le=120)
    receipt_base_url: str | None = Field(
        None, description="https origin receipt QR codes point to, when it is not the backend itself"
    )

    @field_validator("url")
    @classmethod
    def _https(cls, v: str) -> str:
        # http:// passes here only to be refused by check_security outside dev mode, with its own message
        return _origin(v, "must start with https://", plain_http=True)

    @field_validator("receipt_base_url")
    @classmethod
    def _receipt_origin(cls, v: str | None) -> str | None:
        if v is None:
            return None
        return _origin(v, "must start with https:// (receipt QR codes are opened on residents' phones)")

    @model_validator(mode="after")
    def _pair(self):
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together: set both (or neither, in dev mode)")
        return self


class Devices(_Section):
    sscard_reader: str = ""  # PC/SC reader name; empty = the first reader
    printer_port: str = "/dev/kiosk-printer"
    printer_baud: int = Field(default=115200, gt=0)
    printer_profile: Literal["native-qr", "raster-qr", "native-qr-58", "raster-qr-58"] = "native-qr"
    idcard_port: str = ""  # empty = no ID-card reader fitted
    idcard_baud: int = Field(default=115200, gt=0)
    scanner_port: str = ""
    scanner_baud: int = Field(default=9600, gt=0)
    scanner_terminator: str = "\r"
    camera: str = ""  # V4L2 device for QR scanning, e.g. /dev/video0; empty = no camera


class Timeouts(_Section):
    inactivity: float = Field(default=60, ge=10, le=600, description="seconds without a touch before returning home")
    pin: float = Field(default=45, ge=10, le=300)
    warn: float = Field(default=15, ge=3, le=60, description="the countdown shows for this many last seconds")
    card_read: float = Field(default=5, gt=0, le=60)

    @model_validator(mode="after")
    def _warn_is_shorter(self):
        if self.warn >= min(self.inactivity, self.pin):
            raise ValueError("warn must be shorter than inactivity and pin, or the countdown never goes away")
        return self


class Config(_Section):
    terminal: Terminal
    backend: Backend
    devices: Devices = Devices()
    timeouts: Timeouts = Timeouts()
    help: Help = Help()

    def check_security(self) -> list[str]:
        """Problems that are fatal outside dev mode."""
        problems = []
        if not self.terminal.dev:
            if self.backend.url.startswith("http://"):
                problems.append("[backend] url: plain http is refused — use https:// (or set [terminal] dev = true)")
            if self.backend.client_cert is None or self.backend.client_key is None:
                problems.append("[backend] client_cert/client_key: missing — enrol the terminal to get them")
        for name in ("ca", "client_cert", "client_key"):
            p = getattr(self.backend, name)
            if p is not None and not Path(p).is_file():
                problems.append(f"[backend] {name}: file {p} not found — check the path or re-enrol")
        return problems


_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
    "literal_error": "use one of the values listed",
    "string_pattern_mismatch": "use 1 to 64 letters, digits and . _ : - only",
    "bool_type": "write true or false, without quotes",
    "int_type": "write a whole number, without quotes",
    "float_type": "write a number, without quotes",
    "string_type": 'put the value in "quotes"',
}


def _one_line(text: object) -> str:
    """Control characters escaped, so that every problem stays on one line."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))


def _key(part: object) -> str:
    """A key as it can be shown in one line: escaped, and cut when long."""
    s = _one_line(part)
    return s if len(s) <= 40 else s[:37] + "..."


def _too_deep(data: object) -> list[str] | None:
    """The key path to the first value nested deeper than MAX_DEPTH, found without recursion."""
    stack: list[tuple[object, list[str]]] = [(data, [])]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return path
        if isinstance(value, dict):
            stack.extend((v, [*path, str(k)]) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, [*path, f"[{i}]"]) for i, v in enumerate(value))
    return None


def _where(path: list[str]) -> str:
    parts = [_key(p) for p in path[:3]]
    if not parts:
        return "?"
    where = f"[{parts[0]}] {'.'.join(parts[1:])}" if len(parts) > 1 else f"[{parts[0]}]"
    return where + (" ..." if len(path) > 3 else "")


def parse(data: dict, source: str = "config") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the file must hold [sections] of key = value — start from the example")
    deep = _too_deep(data)
    if deep is not None:
        raise ConfigError(
            f"{source}: {_where(deep)}: nested more than {MAX_DEPTH} levels deep — a kiosk config is only "
            "[section] key = value; start from the example"
        )
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors(include_input=False, include_url=False):
            fix = _FIXES.get(err["type"], "fix the value")
            if err["type"] == "string_pattern_mismatch" and err["loc"][-1:] == ("phone",):
                fix = 'write digits with - between groups, e.g. "13800001234" or "0531-12345678"'
            lines.append(f"{source}: {_where([str(p) for p in err['loc']])}: {err['msg']} — {fix}")
        raise ConfigError("\n".join(lines)) from None
    except RecursionError:  # the depth check above should make this unreachable; never a traceback
        raise ConfigError(f"{source}: nested too deeply — a kiosk config is only [section] key = value") from None
    problems = cfg.check_security()
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))
    return cfg


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror}) — check the path") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{p}: file larger than {MAX_FILE_BYTES // 1024} KiB, too big for a kiosk config — check the path"
        )
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML ({_one_line(e)}) — fix the syntax at that line") from None
    except RecursionError:  # tomllib recurses once per nested [array] or {inline table}
        raise ConfigError(
            f"{p}: arrays or inline tables nested too deeply — a kiosk config is only [section] key = value"
        ) from None
    return parse(data, str(p))


# ---------------------------------------------------------------- the station's own volume

# The volume a technician sets with `kiosk voice volume N` is kept in a small file of its own in [terminal]
# data_dir, not written into the config: the config is root's (/etc/kiosk, read-only to the kiosk user), is
# hand-written with comments a rewrite could lose, and a half-written config would stop the kiosk from starting.
# A running kiosk watches the file (kiosk.runtime, every couple of seconds) and applies a change at once. The
# override holds one key; a broken one is ignored with a warning (the configured volume applies), never a
# reason not to start.
VOLUME_FILE = "voice.toml"
_VOLUME_MAX_BYTES = 4096


def volume_path(cfg: Config) -> Path:
    return Path(cfg.terminal.data_dir) / VOLUME_FILE


def check_volume(value: object) -> int:
    """A volume 0-100 as an int, or ValueError (True, 50.5 and "50" are not volumes)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"volume must be a whole number from 0 to 100, not {value!r}")
    return value


def saved_volume(cfg: Config) -> int:
    """The volume to start with: the station's saved one when there is a valid one, else [terminal] voice_volume."""
    got = read_volume(volume_path(cfg))
    return cfg.terminal.voice_volume if got is None else got


def read_volume(path: str | Path) -> int | None:
    """The volume saved in path, or None when there is none or it is broken (logged: the configured one applies)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(_VOLUME_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("%s: cannot read the saved volume (%s): using [terminal] voice_volume", p, e.strerror)
        return None
    try:
        if len(raw) > _VOLUME_MAX_BYTES:
            raise ValueError("file too large")
        data = tomllib.loads(raw.decode("utf-8"))
        if set(data) != {"terminal"} or set(data["terminal"]) != {"voice_volume"}:
            raise ValueError("it must hold only [terminal] voice_volume")
        return check_volume(data["terminal"]["voice_volume"])
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError, TypeError) as e:
        log.warning("%s: saved volume ignored (%s): using [terminal] voice_volume", p, _one_line(e))
        return None


def write_volume(path: str | Path, value: int) -> Path:
    """Save the station's volume in `path` atomically (a temporary file, fsync, rename): a power cut leaves the
    old file or the new one, never half of one. Raises ValueError (bad value) or OSError."""
    value = check_volume(value)
    p = Path(path)
    if not p.parent.is_dir():
        # never made here: a folder root made would lock the kiosk user out of its own data_dir
        raise FileNotFoundError(2, "the data folder does not exist (the kiosk makes it at its first start)",
                                str(p.parent))
    text = f"# Set by `kiosk voice volume`; it wins over kiosk.toml. A running kiosk applies a change at once.\n" \
           f"[terminal]\nvoice_volume = {value}\n"
    fd, tmp = tempfile.mkstemp(prefix=".voice-", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # some filesystems cannot sync a directory: the rename is done either way
    return p


def set_volume(cfg_path: str | Path, value: int) -> Path:
    """The technician's volume for the terminal configured by cfg_path, saved in its data_dir (see VOLUME_FILE);
    returns the file written. A running kiosk notices the new file within a few seconds (Runtime's tick)."""
    value = check_volume(value)
    return write_volume(volume_path(load(cfg_path)), value)


def reset_volume(cfg_path: str | Path) -> bool:
    """Forget the saved volume: [terminal] voice_volume applies again (a running kiosk notices within a few
    seconds). True if one was saved."""
    p = volume_path(load(cfg_path))
    try:
        p.unlink()
    except FileNotFoundError:
        return False
    return True
