"""Twin of a resident-ID-card SAM reader on a pseudo-terminal: speaks the bytes of docs/protocols.md §2.

The driver opens `twin.port` like a real /dev/ttyUSB*; the twin answers each command frame with the
SW3 codes a reader gives, paced at the baud rate. Noise mode adds what a bad cable or a cheap
USB-serial bridge does: garbage between frames, frames split with gaps, now and then a bad checksum.

    python -m sim.idcard_twin --persona elder     # prints the pty path; stdin: place KEY / remove
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import sys
import threading
import time
import tty
from datetime import date
from pathlib import Path

from devices import sam_frames as sf

PERSONAS_PATH = Path(__file__).resolve().parents[1] / "assets" / "demo" / "idcards.json"


def load_personas(path: Path | str | None = None) -> dict[str, dict]:
    with open(path or PERSONAS_PATH, encoding="utf-8") as fh:
        return {c["key"]: c for c in json.load(fh)["cards"]}


def _d(value) -> date:
    """A date, or the long-term marker where the card allows one (twins may lie: the type is loose)."""
    if value in (None, "", sf.LONG_TERM):
        return value or sf.LONG_TERM  # type: ignore[return-value]
    return date.fromisoformat(value)


def card_from_persona(p: dict) -> sf.IdCardData:
    """A persona of assets/demo/idcards.json → the data its chip holds (no validation: twins may lie)."""
    return sf.IdCardData(
        card_type=sf.CardType(p.get("card_type", "resident")), name=p.get("name", ""),
        gender=str(p.get("gender", "")), nation=p.get("nation"), birth_date=_d(p["birth_date"]),
        address=p.get("address", ""), id_number=p.get("id_number", ""), issuer=p.get("issuer", ""),
        valid_from=_d(p["valid_from"]), valid_to=_d(p.get("valid_to")),
        english_name=p.get("english_name", ""), nationality=p.get("nationality", ""),
        pass_number=p.get("pass_number", ""), issue_count=p.get("issue_count"),
        card_version=p.get("card_version", ""),
    )


def fake_wlt(seed: str) -> bytes:
    """1024 stand-in photo bytes (a real WLT is vendor-encrypted; nothing here pretends to be one)."""
    return random.Random(seed).randbytes(sf.PHOTO_LEN)


class IdCardTwin:
    """SAM reader twin. Thread-safe controls: place(), remove(), silent, set_fault()."""

    def __init__(
        self,
        persona: dict | str | None = None,
        baudrate: int = 115200,
        pace: bool = True,
        noise: bool = False,
        seed: int | None = None,
        halt_after_read: bool = False,
        read_delay: float = 0.0,
    ):
        self.baudrate = baudrate
        self.pace = pace
        self.noise = noise
        self.halt_after_read = halt_after_read  # a real card may stay halted (find → 80) until lifted
        self.read_delay = read_delay  # extra RF + SAM time for a read, off by default
        self.silent = False  # reads and never answers: a dead or unpowered module
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._card: sf.IdCardData | None = None
        self._text = b""
        self._photo = b""
        self._selected = False
        self._halted = False
        self._faults: dict[tuple[int, int], int] = {}
        self.commands: list[tuple[int, int]] = []  # every well-formed command seen
        self.bad_frames = 0
        self.bytes_out = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # anyone who opens the path gets a raw line, no echo
        os.set_blocking(self._master, False)
        self._port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if persona is not None:
            self.place(persona)

    # ------------------------------------------------------------------ controls

    @property
    def port(self) -> str:
        return self._port

    @property
    def byte_time(self) -> float:
        return 10.0 / self.baudrate  # 8N1: start + 8 data + stop bits

    def place(self, persona: dict | str) -> None:
        """Put a card on the reader (a persona dict, or a key of assets/demo/idcards.json)."""
        if isinstance(persona, str):
            persona = load_personas()[persona]
        card = card_from_persona(persona)
        text = sf.encode_text(card)
        with self._lock:
            self._card, self._text = card, text
            self._photo = fake_wlt(persona.get("key", card.id_number))
            self._selected = self._halted = False

    def remove(self) -> None:
        with self._lock:
            self._card = None
            self._selected = self._halted = False

    def set_fault(self, cmd: tuple[int, int], sw3: int | None) -> None:
        """Answer `cmd` with this SW3 (no data) until cleared with sw3=None."""
        with self._lock:
            if sw3 is None:
                self._faults.pop(cmd, None)
            else:
                self._faults[cmd] = sw3

    def start(self) -> IdCardTwin:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="idcard-twin", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = -1

    def __enter__(self) -> IdCardTwin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ protocol

    def answer(self, payload: bytes) -> bytes:
        """Response frame for one command payload (CMD PARA [data])."""
        if len(payload) < 2:
            return sf.build_response(0, 0, sf.SW_LENGTH)
        cmd = (payload[0], payload[1])
        with self._lock:
            self.commands.append(cmd)
            if cmd in self._faults:
                return sf.build_response(0, 0, self._faults[cmd])
            card = self._card
            if cmd == sf.SAM_STATUS:
                return sf.build_response(0, 0, sf.SW_OK)
            if cmd == sf.SAM_ID:
                return sf.build_response(0, 0, sf.SW_OK, bytes(range(16)))
            if cmd == sf.FIND_CARD:
                if card is None or self._halted:
                    return sf.build_response(0, 0, sf.SW_NO_CARD)
                return sf.build_response(0, 0, sf.SW_FIND_OK, b"\x00" * 4)
            if cmd == sf.SELECT_CARD:
                if card is None:
                    return sf.build_response(0, 0, sf.SW_SELECT_FAILED)
                self._selected = True
                return sf.build_response(0, 0, sf.SW_OK, b"\x00" * 8)
            if cmd in (sf.READ_TEXT_PHOTO, sf.READ_TEXT_PHOTO_FP):
                if card is None or not self._selected:
                    return sf.build_response(0, 0, sf.SW_READ_FAILED)
                if self.halt_after_read:
                    self._halted = True
                if cmd == sf.READ_TEXT_PHOTO:
                    data = sf.encode_read_data(self._text, self._photo)
                else:
                    fp = b"\x00" * 1024
                    data = (len(self._text).to_bytes(2, "big") + len(self._photo).to_bytes(2, "big")
                            + len(fp).to_bytes(2, "big") + self._text + self._photo + fp)
                return sf.build_response(0, 0, sf.SW_OK, data)
            return sf.build_response(0, 0, sf.SW_UNKNOWN_CMD)

    def _run(self) -> None:
        parser = sf.FrameParser()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                chunk = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                time.sleep(0.05)  # EIO while nobody holds the slave open: keep serving
                continue
            for item in parser.feed(chunk):
                if self.silent:
                    continue
                if isinstance(item, sf.BadFrame):
                    self.bad_frames += 1
                    if item.reason == "checksum":
                        self._send(sf.build_response(0, 0, sf.SW_CHECKSUM), cmd_len=10)
                    continue
                reply = self.answer(item)
                if self.read_delay and item[:2] in (bytes(sf.READ_TEXT_PHOTO), bytes(sf.READ_TEXT_PHOTO_FP)):
                    time.sleep(self.read_delay)
                self._send(reply, cmd_len=len(item) + sf.HEADER_LEN + 1)

    def _send(self, frame: bytes, cmd_len: int) -> None:
        if self.pace:
            time.sleep(cmd_len * self.byte_time)  # the command's own time on the wire
        if not self.noise:
            self._write(frame)
            return
        rng = self._rng
        if rng.random() < 0.5:
            garbage = bytes(rng.choice([b for b in range(256) if b != 0xAA]) for _ in range(rng.randint(1, 24)))
            if rng.random() < 0.3:
                garbage += sf.PREAMBLE + b"\xff\xff"  # a false start with an absurd length
            if rng.random() < 0.3:
                garbage += b"\xaa\xaa"  # a partial preamble right before the real one
            self._write(garbage)
        if rng.random() < 0.15:
            frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
        cuts = sorted(rng.sample(range(1, len(frame)), k=min(len(frame) - 1, rng.randint(1, 3))))
        prev = 0
        for cut in [*cuts, len(frame)]:
            self._write(frame[prev:cut])
            prev = cut
            time.sleep(rng.uniform(0.0005, 0.004))

    def _write(self, data: bytes) -> None:
        step = 64
        t0 = time.monotonic()
        for off in range(0, len(data), step):
            piece = data[off : off + step]
            while piece and not self._stop.is_set():
                try:
                    _, writable, _ = select.select([], [self._master], [], 0.05)
                    if writable:
                        n = os.write(self._master, piece)
                        piece = piece[n:]
                        self.bytes_out += n
                except BlockingIOError:
                    continue
                except OSError:
                    return
            if self.pace:
                delay = t0 + (off + step) * self.byte_time - time.monotonic()
                if delay > 0:
                    time.sleep(delay)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Resident-ID-card reader twin on a pty")
    ap.add_argument("--persona", help="key in assets/demo/idcards.json (none: empty reader)")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--noise", action="store_true")
    ap.add_argument("--no-pace", action="store_true")
    args = ap.parse_args(argv)
    twin = IdCardTwin(args.persona, baudrate=args.baud, pace=not args.no_pace, noise=args.noise).start()
    print(twin.port, flush=True)
    try:
        for line in sys.stdin:  # demo control: "place KEY", "remove", "quit"
            words = line.split()
            if not words:
                continue
            if words[0] == "place" and len(words) == 2:
                twin.place(words[1])
            elif words[0] == "remove":
                twin.remove()
            elif words[0] == "quit":
                break
        else:
            while True:  # stdin closed: keep serving until interrupted
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        twin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
