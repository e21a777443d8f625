"""The demo stack: the reference backend over mutual TLS, pcscd with virtual cards, the printer twin.

The kiosk talks to all of them through its real drivers and client, over the real transports. The
same controls drive the dev panel, the scripted demo and the UI tests.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from kiosk.config import Backend, Config, Devices, Help, Terminal, Timeouts, Volunteer

log = logging.getLogger(__name__)

DEMO_READER = "Virtual PCD 00 00"
DEMO_VPCD_PORT = 35963
SITE_NAME = "示范镇人社服务站"


class ShownPicture:
    """The camera twin for the demo: a live-looking frame, with a QR code in it while one is shown; or, for the
    document camera and the face photo, colour pictures placed in front of it (`place`)."""

    def __init__(self, fps: float = 15.0) -> None:
        self._frame = None
        self._text = None
        self._period = 1.0 / fps
        self._next = 0.0
        self._pictures: list = []  # colour frames in turn; the last one stays
        self._i = 0

    def place(self, frames) -> None:
        """Put pictures in front of the camera (one frame or a list shown in turn, the last one held)."""
        import numpy as np

        self._pictures = [frames] if isinstance(frames, np.ndarray) else list(frames)
        self._i = 0

    def read_colour(self):
        if not self._pictures:
            import cv2

            grey = self.read()
            return None if grey is None else cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        self._pace()
        frame = self._pictures[min(self._i, len(self._pictures) - 1)]
        self._i += 1
        return frame

    def capture_still(self):
        return self.read_colour()

    def _pace(self) -> None:
        import time

        wait = self._next - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # paced like a real camera
        self._next = time.monotonic() + self._period

    def show(self, text: str | None) -> None:
        from sim.camera_twin import noise_frame, synth_frame

        self._text = text
        self._frame = synth_frame(text) if text else noise_frame(seed=1)

    def status(self):
        from devices.base import DeviceStatus

        return DeviceStatus.ONLINE

    def read(self):
        if self._frame is None:
            self.show(None)
        self._pace()
        return self._frame

    def close(self) -> None:
        pass


class DemoStack:
    def __init__(
        self, out_dir: str | Path, *, orientation: Literal["landscape", "portrait"] = "landscape",
        timeouts: Timeouts | None = None,
    ):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.orientation: Literal["landscape", "portrait"] = orientation
        self.timeouts = timeouts or Timeouts()
        # set by start(): the running backend and twins
        self.pcscd: Any = None
        self.server: Any = None
        self.printer: Any = None
        self.card: Any = None  # the VirtualCard now in the reader
        self.idcard: Any = None
        self.scanner: Any = None
        self.camera = ShownPicture()

    def start(self) -> Config:
        from backend.server import start_server
        from sim.pcscd import ensure_pcscd, wait_ready
        from sim.printer_twin import PrinterTwin

        self.pcscd = ensure_pcscd()
        if not wait_ready(10.0, readers=(DEMO_READER,)):
            raise RuntimeError("pcscd did not show the vpcd reader — is vsmartcard-vpcd installed?")
        self.server = start_server(self.out / "backend", demo=True, terminal_id="T-DEMO-0001", site_id="370102001",
                                   worklist_port=0)
        self.printer = PrinterTwin(self.out / "receipts")
        from sim.idcard_twin import IdCardTwin
        from sim.scanner_twin import ScannerTwin

        self.idcard = IdCardTwin().start()
        self.scanner = ScannerTwin()
        return Config(
            terminal=Terminal(
                id="T-DEMO-0001", site_id="370102001", site_name=SITE_NAME, orientation=self.orientation,
                data_dir=str(self.out / "kiosk-data"),
            ),
            backend=Backend(
                url=self.server.url, ca=self.server.ca_path, client_cert=self.server.client_cert,
                client_key=self.server.client_key, receipt_base_url=self.server.verify_url,
            ),
            devices=Devices(
                sscard_reader=DEMO_READER, printer_port=self.printer.port, idcard_port=self.idcard.port,
                scanner_port=self.scanner.port,
            ),
            timeouts=self.timeouts,
            # fictional station staff and numbers for the help panel
            help=Help(volunteers=[Volunteer(name="张秀英", phone="13800001111"), Volunteer(name="刘建军", phone="13900002222")],
                      station_phone="0531-12345678"),
        )

    # -- dev-panel controls
    def insert_card(self, key: str, **knobs) -> None:
        from sim.personas import persona
        from sim.vcard import NOT_SSCARD, VirtualCard

        self.remove_card()
        p = NOT_SSCARD if key == NOT_SSCARD["key"] else persona(key)
        self.card = VirtualCard(p, port=DEMO_VPCD_PORT, **knobs)
        self.card.insert()

    def remove_card(self) -> None:
        if self.card is not None:
            self.card.remove()
            self.card = None

    def place_idcard(self, key: str) -> None:
        self.idcard.place(key)

    def remove_idcard(self) -> None:
        self.idcard.remove()

    def scan(self, text: str) -> None:
        """The hand-held scanner reads a code (its twin writes it down the serial line)."""
        self.scanner.scan(text)

    def show_camera(self, text: str | None) -> None:
        """Hold a QR code carrying `text` up to the camera (None: nothing in view)."""
        self.camera.show(text)

    def show_document(self) -> None:
        """Lay a (fictional) paper document under the document camera."""
        from sim.camera_twin import document_frame

        self.camera.place(document_frame())

    def show_face(self) -> None:
        """A (drawn, fictional) person walks up to the camera and holds still."""
        from sim.camera_twin import face_approach

        self.camera.place(face_approach(hold=0.6))

    def ecard_code(self, key: str, expired: bool = False) -> str:
        """A fresh electronic social-security card code for a demo person (what their phone would show)."""
        import requests

        s = self.server
        r = requests.get(f"{s.url}/v1/demo/ecard-code/{key}", params={"expired": expired}, verify=str(s.ca_path),
                         cert=(str(s.client_cert), str(s.client_key)), timeout=5)
        r.raise_for_status()
        return r.json()["code"]

    def revoke_ecard(self, code: str) -> None:
        import requests

        s = self.server
        requests.post(f"{s.url}/v1/demo/ecard-revoke", json={"code": code}, verify=str(s.ca_path),
                      cert=(str(s.client_cert), str(s.client_key)), timeout=5).raise_for_status()

    def set_paper(self, state: str) -> None:
        self.printer.set_paper(state)

    def capture_worklist(self, dest: Path) -> list[Path]:
        """The township clerk's worklist as the clerk sees it, after a demo: the page saved as HTML (its style
        inlined) and, where Chromium is installed, a PNG of it. A demo clerk password is set for this stack."""
        import re
        import secrets
        import shutil
        import subprocess

        import requests

        from backend.worklist import set_clerk_password

        password = secrets.token_urlsafe(12)
        set_clerk_password(self.server.keys_dir, password)
        base = self.server.worklist_url
        ca = str(self.server.ca_path)  # per call: a session's verify loses to REQUESTS_CA_BUNDLE in the environment
        with requests.Session() as web:
            page = web.get(f"{base}/login", timeout=10, verify=ca)
            nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
            web.post(f"{base}/login", data={"nonce": nonce.group(1) if nonce else "", "password": password},
                     timeout=10, verify=ca).raise_for_status()
            html = web.get(f"{base}/", timeout=10, verify=ca).text
            css = web.get(f"{base}/static/worklist.css", timeout=10, verify=ca).text
        html = html.replace('<link rel="stylesheet" href="/static/worklist.css">', f"<style>{css}</style>")
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / f"{self.orientation}-worklist.html"
        out.write_text(html, encoding="utf-8")
        made = [out]
        browser = shutil.which("chromium")
        if browser:
            png = out.with_suffix(".png")
            subprocess.run(
                [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={png}",
                 "--window-size=1440,1000", out.as_uri()],
                capture_output=True, timeout=60, check=False,
            )
            if png.exists():
                made.append(png)
        return made

    def backend_mode(self, mode: str) -> None:
        self.server.set_mode(mode)

    def stop(self) -> None:
        from sim.pcscd import stop_pcscd

        self.remove_card()
        for closer in (
            lambda: self.idcard and self.idcard.stop(),
            lambda: self.scanner and self.scanner.close(),
            lambda: self.printer and self.printer.close(),
            lambda: self.server and self.server.stop(),
            lambda: stop_pcscd(self.pcscd),
        ):
            try:
                closer()
            except Exception:
                log.warning("demo stack: stop step failed", exc_info=True)
