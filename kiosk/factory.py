"""One factory builds the devices and the backend client from the config."""

from __future__ import annotations

from kiosk.backend_client import BackendClient
from kiosk.config import Config


def build_backend(cfg: Config) -> BackendClient:
    b = cfg.backend
    return BackendClient(
        b.url,
        ca_path=str(b.ca),
        client_cert=str(b.client_cert) if b.client_cert else None,
        client_key=str(b.client_key) if b.client_key else None,
        connect_timeout=b.connect_timeout,
        read_timeout=b.read_timeout,
        allow_insecure=cfg.terminal.dev,
    )


def build_devices(cfg: Config):
    """(card reader, printer): the real drivers; the demo points them at the twins' transports."""
    from devices.printer import SerialPrinter
    from devices.sscard import PcscCardReader

    d = cfg.devices
    card = PcscCardReader(reader_name=d.sscard_reader or None)
    printer = SerialPrinter(d.printer_port, baudrate=d.printer_baud, profile=d.printer_profile)
    return card, printer
