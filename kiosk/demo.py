"""The demo stack: the reference backend over mutual TLS, pcscd with virtual cards, the printer twin.

The kiosk talks to all of them through its real drivers and client, over the real transports. The
same controls drive the dev panel, the scripted demo and the UI tests.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kiosk.config import Backend, Config, Devices, Terminal, Timeouts

log = logging.getLogger(__name__)

DEMO_READER = "Virtual PCD 00 00"
DEMO_VPCD_PORT = 35963
SITE_NAME = "示范镇人社服务站"


class DemoStack:
    def __init__(self, out_dir: str | Path, *, orientation: str = "landscape", timeouts: Timeouts | None = None):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.orientation = orientation
        self.timeouts = timeouts or Timeouts()
        self.pcscd = None
        self.server = None
        self.printer = None
        self.card = None  # the VirtualCard now in the reader

    def start(self) -> Config:
        from backend.server import start_server
        from devices.sim.pcscd import ensure_pcscd, wait_ready
        from devices.sim.printer_twin import PrinterTwin

        self.pcscd = ensure_pcscd()
        if not wait_ready(10.0, readers=(DEMO_READER,)):
            raise RuntimeError("pcscd did not show the vpcd reader — is vsmartcard-vpcd installed?")
        self.server = start_server(self.out / "backend", demo=True)
        self.printer = PrinterTwin(self.out / "receipts")
        return Config(
            terminal=Terminal(
                id="T-DEMO-0001", site_id="370102001", site_name=SITE_NAME, orientation=self.orientation,
            ),
            backend=Backend(
                url=self.server.url, ca=self.server.ca_path, client_cert=self.server.client_cert,
                client_key=self.server.client_key,
            ),
            devices=Devices(sscard_reader=DEMO_READER, printer_port=self.printer.port),
            timeouts=self.timeouts,
        )

    # -- dev-panel controls
    def insert_card(self, key: str, **knobs) -> None:
        from devices.sim.personas import persona
        from devices.sim.vcard import NOT_SSCARD, VirtualCard

        self.remove_card()
        p = NOT_SSCARD if key == NOT_SSCARD["key"] else persona(key)
        self.card = VirtualCard(p, port=DEMO_VPCD_PORT, **knobs)
        self.card.insert()

    def remove_card(self) -> None:
        if self.card is not None:
            self.card.remove()
            self.card = None

    def set_paper(self, state: str) -> None:
        self.printer.set_paper(state)

    def backend_mode(self, mode: str) -> None:
        self.server.set_mode(mode)

    def stop(self) -> None:
        from devices.sim.pcscd import stop_pcscd

        self.remove_card()
        for closer in (
            lambda: self.printer and self.printer.close(),
            lambda: self.server and self.server.stop(),
            lambda: stop_pcscd(self.pcscd),
        ):
            try:
                closer()
            except Exception:
                log.warning("demo stack: stop step failed", exc_info=True)
