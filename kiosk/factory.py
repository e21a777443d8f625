"""One factory builds the devices and the backend client from the config."""

from __future__ import annotations

import logging

from devices.base import DeviceStatus
from kiosk.backend_client import BackendClient
from kiosk.config import Config, ConfigError

log = logging.getLogger(__name__)


def build_backend(cfg: Config) -> BackendClient:
    try:
        return _client(cfg)
    except ValueError as e:  # the client's own safety checks: report them like any config error
        raise ConfigError(f"[backend]: {e} — check url, ca, client_cert and client_key") from None


def _client(cfg: Config) -> BackendClient:
    b = cfg.backend
    return BackendClient(
        b.url,
        ca_path=str(b.ca),
        client_cert=str(b.client_cert) if b.client_cert else None,
        client_key=str(b.client_key) if b.client_key else None,
        connect_timeout=b.connect_timeout,
        read_timeout=b.read_timeout,
        allow_insecure=cfg.terminal.dev,
        # the origin printed in receipt QR codes, when it is not the backend's own (a public verify listener)
        receipt_base_url=getattr(b, "receipt_base_url", None) or None,
    )


def build_devices(cfg: Config):
    """(card reader, printer): the real drivers; the demo points them at the twins' transports."""
    from devices.printer import SerialPrinter
    from devices.sscard import PcscCardReader

    d = cfg.devices
    card = PcscCardReader(reader_name=d.sscard_reader or None)
    printer = SerialPrinter(d.printer_port, baudrate=d.printer_baud, profile=d.printer_profile)
    return card, printer


def build_optional_devices(cfg: Config) -> dict:
    """The ID-card reader, QR scanner and camera, each only when configured (None otherwise)."""
    from devices.idcard import SerialIdCardReader
    from devices.scanner import SerialScanner

    d = cfg.devices
    term = d.scanner_terminator.encode("utf-8") or b"\r"
    camera = None
    if d.camera:
        from devices.camera import V4l2Camera  # numpy, OpenCV, zxing-cpp: only when a camera is fitted

        camera = V4l2Camera(d.camera)
        if camera.open() is not DeviceStatus.ONLINE:
            # never offer residents a scan screen that shows nothing
            log.warning("camera %s not available (%s): QR scanning by camera is off", d.camera, camera.detail)
            camera = None
    return {
        "idcard_reader": SerialIdCardReader(d.idcard_port, baudrate=d.idcard_baud) if d.idcard_port else None,
        "scanner": SerialScanner(d.scanner_port, baudrate=d.scanner_baud, terminator=term) if d.scanner_port else None,
        "camera": camera,
    }
