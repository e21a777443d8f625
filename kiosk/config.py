"""One TOML file configures a terminal; it is validated at start-up with errors that name the key and the fix."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(Exception):
    """Raised with one line per problem: '[section] key: what is wrong — how to fix it'."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Terminal(_Section):
    id: str = Field(min_length=1, description="terminal id issued at enrolment, e.g. T-370102-0001")
    site_id: str = Field(min_length=1)
    site_name: str = Field(min_length=1, description="shown on receipts, e.g. 示范镇人社服务站")
    orientation: Literal["landscape", "portrait"] = "landscape"
    locale: Literal["zh_CN", "en"] = "zh_CN"
    dev: bool = False  # cursor visible, insecure backend allowed, dev panel
    elder_mode: bool = True  # start in elder mode: bigger type
    shuffle_keypad: bool = False  # PIN keys in a new order each session, against smudges and onlookers


class Backend(_Section):
    url: str = Field(description="https://host:port of the kiosk API")
    ca: Path = Field(description="CA certificate the backend's certificate must chain to (pinned)")
    client_cert: Path | None = None
    client_key: Path | None = None
    connect_timeout: float = Field(3.05, gt=0, le=30)
    read_timeout: float = Field(8.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _https(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError("must start with https://")
        u = urlsplit(v)
        if not u.hostname or u.query or u.fragment:
            raise ValueError("must be https://host[:port][/path] with a host and no ?query or #fragment")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _pair(self):
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together: set both (or neither, in dev mode)")
        return self


class Devices(_Section):
    sscard_reader: str = ""  # PC/SC reader name; empty = the first reader
    printer_port: str = "/dev/kiosk-printer"
    printer_baud: int = Field(115200, gt=0)
    printer_profile: Literal["native-qr", "raster-qr", "native-qr-58", "raster-qr-58"] = "native-qr"
    idcard_port: str = ""  # empty = no ID-card reader fitted
    idcard_baud: int = Field(115200, gt=0)
    scanner_port: str = ""
    scanner_baud: int = Field(9600, gt=0)
    scanner_terminator: str = "\r"
    camera: str = ""  # V4L2 device for QR scanning, e.g. /dev/video0; empty = no camera


class Timeouts(_Section):
    inactivity: float = Field(60, ge=10, le=600, description="seconds without a touch before returning home")
    pin: float = Field(45, ge=10, le=300)
    warn: float = Field(15, ge=3, le=60, description="the countdown shows for this many last seconds")
    card_read: float = Field(5, gt=0, le=60)

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
}


def parse(data: dict, source: str = "config") -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = [str(p) for p in err["loc"]]
            where = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else f"[{loc[0]}]" if loc else "?"
            fix = _FIXES.get(err["type"], "fix the value")
            lines.append(f"{source}: {where}: {err['msg']} — {fix}")
        raise ConfigError("\n".join(lines)) from None
    problems = cfg.check_security()
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))
    return cfg


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror}) — check the path") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML ({e}) — fix the syntax at that line") from None
    return parse(data, str(p))
