"""Virtual social-security card for vsmartcard's vpcd reader driver in pcscd.

The card is a TCP client of vpcd (127.0.0.1:35963 = reader "Virtual PCD 00 00", 35964 = "... 00 01"):
it is "inserted" while connected. vpcd messages are a 2-byte big-endian length and a payload; a 1-byte
payload is a control code (0 power off, 1 power on, 2 reset, 4 get ATR), anything else an APDU.

The chip logic (`SSCardChip`) follows docs/protocols.md section 1 and keeps its own PIN counter like a real
chip. Third-generation personas ("needs_sam") refuse EF06 with 6982 until EXTERNAL AUTHENTICATE succeeds
with a cryptogram made from TEST_PSAM_KEY (see `SoftPsam`): a test key for this twin only; real cards are
unlocked by a real PSAM and are never given this key.

Run `python -m sim.vcard --persona elder` to insert a card until Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import socket
import struct
import threading
import time
from datetime import date

from sim.personas import load_personas, persona

SSSE_AID = "sx1.sh.社会保障".encode("gbk")
# T=0 only ATR: TS 3B, T0 68 (TB1, TC1 present, 8 historical bytes), TB1 00, TC1 00, historical bytes.
ATR = bytes.fromhex("3B680000") + b"SSSE-VC1"
TEST_PSAM_KEY = b"VILLAGE-KIOSK-TEST-PSAM-KEY-NOT-FOR-REAL-CARDS"
NOT_SSCARD = {"key": "not_sscard", "label": "非社保卡 (无社保应用)", "not_sscard": True}

_CTRL_OFF, _CTRL_ON, _CTRL_RESET, _CTRL_ATR = 0, 1, 2, 4
_MAX_TRIES = 3


def test_cryptogram(card_id: str, challenge: bytes, key: bytes = TEST_PSAM_KEY) -> bytes:
    """The twin's EXTERNAL AUTHENTICATE cryptogram: HMAC-SHA256(key, card_id || challenge)[:16]."""
    return hmac.new(key, card_id.encode("ascii") + challenge, hashlib.sha256).digest()[:16]


class SoftPsam:
    """Test double of a PSAM that knows the twin's TEST key (implements devices.sscard.Psam)."""

    def __init__(self, key: bytes = TEST_PSAM_KEY):
        self._key = key

    def external_auth_cryptogram(self, card_id: str, challenge: bytes) -> bytes | None:
        return test_cryptogram(card_id, challenge, self._key)


def _bcd(digits: str) -> bytes:
    return bytes.fromhex(digits)


def _bcd_date(iso: str | None) -> bytes:
    return _bcd(date.fromisoformat(iso).strftime("%Y%m%d")) if iso else b"\0\0\0\0"


def _text(value: str, size: int, pad: bool) -> bytes:
    raw = value.encode("gb18030")
    if len(raw) > size:
        raise ValueError(f"field longer than {size} bytes")
    return raw.ljust(size, b"\0") if pad else raw


def _split_name(name: str) -> tuple[bytes, bytes]:
    """姓名 (30 bytes) + 姓名扩展 (20 bytes), split on a character boundary."""
    head, tail = b"", b""
    for ch in name:
        enc = ch.encode("gb18030")
        if not tail and len(head) + len(enc) <= 30:
            head += enc
        else:
            tail += enc
    if len(tail) > 20:
        raise ValueError("name longer than 50 bytes")
    return head, tail


def build_files(p: dict, padded: bool = True) -> dict[int, dict[int, bytes]]:
    """EF05/EF06 record values keyed by SFI then tag, from a persona. `padded=False` stores text records
    at their real length (some cards do; a reader asking for the spec length then gets 6Cxx on T=0)."""
    head, tail = _split_name(p["name"])

    def name_field(raw: bytes, size: int) -> bytes:
        return raw.ljust(size, b"\0") if padded else raw

    ef05 = {
        0x01: bytes.fromhex(p["card_id"]),
        0x02: p["card_type"].encode("ascii"),
        0x03: p["version"].encode("ascii"),
        0x04: _text(p["init_org"], 12, True),
        0x05: _bcd_date(p.get("issue_date")),
        0x06: _bcd_date(p.get("expiry_date")),
        0x07: _text(p["card_number"], 9, True),
    }
    ef06 = {
        0x08: p["ssn"].encode("ascii"),
        0x09: name_field(head, 30),
        0x0A: p["gender"].encode("ascii"),
        0x0B: bytes([int(p.get("nation") or 0)]),
        0x0C: _bcd(p["birth_place"].ljust(6, "F")),
        0x0D: _bcd_date(p.get("birth_date")),
    }
    if not p["version"].startswith("1"):
        ef06[0x4E] = name_field(tail, 20)
    return {5: ef05, 6: ef06}


class SSCardChip:
    """The card's APDU logic. PIN tries and the blocked flag live here, as on a real chip."""

    def __init__(self, p: dict, t0_style: str | None = None):
        if t0_style not in (None, "61", "6C"):
            raise ValueError("t0_style must be None, '61' or '6C'")
        self.persona = p
        self.t0_style = t0_style
        self.not_sscard = bool(p.get("not_sscard"))
        self.files = {} if self.not_sscard else build_files(p, padded=t0_style != "6C")
        self.pin = p.get("pin", "")
        self.tries_left = int(p.get("tries_left", _MAX_TRIES))
        self.blocked = bool(p.get("blocked")) or self.tries_left <= 0
        self.needs_sam = bool(p.get("needs_sam"))
        self.card_id = p.get("card_id", "").upper()
        self.reset()

    def reset(self) -> None:
        """Power cycle: volatile state only (the PIN counter is in EEPROM)."""
        self.app_selected = False
        self.current_ef: int | None = None
        self.authenticated = False
        self.challenge: bytes | None = None
        self.pending = b""

    # ---- helpers
    def _data(self, data: bytes, le: int | None) -> bytes:
        """Answer data in this card's T=0 style."""
        if self.t0_style == "61" and data:
            self.pending = data
            return bytes([0x61, len(data) & 0xFF])
        if self.t0_style == "6C" and le is not None and le != (len(data) & 0xFF):
            return bytes([0x6C, len(data) & 0xFF])
        return data + b"\x90\x00"

    def process(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        lc, data, le = 0, b"", None
        if len(body) == 1:
            le = body[0]
        elif len(body) > 1:
            lc = body[0]
            data = body[1 : 1 + lc]
            if len(data) != lc or len(body) > lc + 2:
                return b"\x67\x00"
            if len(body) == lc + 2:
                le = body[-1]
        if cla != 0x00:
            return b"\x6e\x00"
        if ins != 0xC0:
            self.pending = b""
        handler = {
            0xA4: self._select,
            0xB2: self._read_record,
            0x20: self._verify,
            0x84: self._get_challenge,
            0x82: self._external_auth,
        }.get(ins)
        if ins == 0xC0:
            return self._get_response(p1, p2, le)
        if handler is None:
            return b"\x6d\x00"
        return handler(p1, p2, data, le)

    # ---- commands
    def _select(self, p1, p2, data, le):
        if p1 == 0x04:
            if self.not_sscard or data != SSSE_AID:
                return b"\x6a\x82"
            self.app_selected, self.current_ef, self.authenticated = True, None, False
            fci = b"\x6f" + bytes([len(data) + 2]) + b"\x84" + bytes([len(data)]) + data
            return self._data(fci, le) if self.t0_style == "61" else b"\x90\x00"
        if p1 == 0x02 and self.app_selected and len(data) == 2 and data[0] == 0xEF and data[1] in self.files:
            self.current_ef = data[1]
            return b"\x90\x00"
        return b"\x6a\x82"

    def _read_record(self, p1, p2, data, le):
        if not self.app_selected:
            return b"\x69\x86"
        sfi = p2 >> 3 or self.current_ef
        ef = self.files.get(sfi) if sfi is not None else None
        if ef is None:
            return b"\x6a\x82"
        if sfi == 6 and self.needs_sam and not self.authenticated:
            return b"\x69\x82"
        mode = p2 & 0x07
        if mode == 0x00:  # P1 is the record identifier (tag)
            tag = p1
        elif mode == 0x04:  # P1 is a record number, in the card's storage order
            tags = list(ef)
            if not 1 <= p1 <= len(tags):
                return b"\x6a\x83"
            tag = tags[p1 - 1]
        else:
            return b"\x6a\x86"
        if tag not in ef:
            return b"\x6a\x83"
        value = ef[tag]
        return self._data(bytes([tag, len(value)]) + value, le)

    def _verify(self, p1, p2, data, le):
        if not self.app_selected:
            return b"\x69\x86"
        if self.blocked:
            return b"\x69\x83"
        digits = data.hex().upper().rstrip("F")
        if digits == self.pin:
            self.tries_left = _MAX_TRIES
            return b"\x90\x00"
        self.tries_left = max(0, self.tries_left - 1)
        if self.tries_left == 0:
            self.blocked = True
        return bytes([0x63, 0xC0 | self.tries_left])

    def _get_challenge(self, p1, p2, data, le):
        self.challenge = os.urandom(le or 8)
        return self._data(self.challenge, le)

    def _external_auth(self, p1, p2, data, le):
        if self.challenge is None:
            return b"\x69\x85"
        expected = test_cryptogram(self.card_id, self.challenge)
        self.challenge = None
        if p2 != 0x0A or not hmac.compare_digest(expected, data):
            return b"\x63\x00"
        self.authenticated = True
        return b"\x90\x00"

    def _get_response(self, p1, p2, le):
        if not self.pending:
            return b"\x69\x85"
        n = le or 256
        chunk, self.pending = self.pending[:n], self.pending[n:]
        if self.pending:
            return chunk + bytes([0x61, len(self.pending) & 0xFF])
        return chunk + b"\x90\x00"


class VirtualCard:
    """A card in vpcd's reader: insert() connects and serves APDUs on a thread; remove() disconnects.

    Knobs: t0_style ('61' / '6C' T=0 answers), drop_after (disconnect on receiving APDU number N,
    0-based: "pulled out" mid-read), delay (seconds before each answer), quickack (TCP_QUICKACK before
    every recv; off only to measure what it saves).

    swap() / swap_at() put another card in the slot without the TCP connection noticing: pcscd and
    the reader see one card all along, as with a swap faster than pcscd's presence poll. A `warm`
    swap hands over a card whose social-security application is already selected, so only the
    identity it answers with tells it apart (a cold one answers 6986 to READ RECORD, like a card that
    was never selected).
    """

    def __init__(
        self,
        persona: dict,
        host: str = "127.0.0.1",
        port: int = 35963,
        t0_style: str | None = None,
        drop_after: int | None = None,
        delay: float = 0.0,
        quickack: bool = True,
    ):
        self.chip = SSCardChip(persona, t0_style)
        self.host, self.port = host, port
        self.drop_after = drop_after
        self.delay = delay
        self.quickack = quickack
        self.apdu_count = 0
        self.apdu_headers: list[bytes] = []  # CLA INS P1 P2 of each APDU (no data: a PIN may be in it)
        self.inserted_at: float | None = None  # time.monotonic() when the TCP connection was made
        self.first_message_at: float | None = None  # when vpcd first spoke to it (pcscd's presence poll)
        self._swap: tuple[int, dict, bool] | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def swap(self, persona: dict, warm: bool = False) -> None:
        """Another card in the slot now (power-on state; `warm`: its application already selected)."""
        chip = SSCardChip(persona, self.chip.t0_style)
        chip.app_selected = warm and not chip.not_sscard
        with self._lock:
            self.chip = chip

    def swap_at(self, index: int, persona: dict, warm: bool = False) -> None:
        """Swap to `persona` just before APDU number `index` (counted like apdu_count) is answered."""
        with self._lock:
            self._swap = (index, persona, warm)

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self, timeout: float = 5.0) -> None:
        """Connect to vpcd (retrying while pcscd starts up). Raises OSError if it never answers."""
        if self.inserted:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.chip.reset()
        self.inserted_at, self.first_message_at = time.monotonic(), None
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="vcard", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._thread = None

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            if self._sock is sock:
                self._sock = None
        try:
            sock.close()
        except OSError:
            pass

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            if self.quickack:
                # vpcd writes each message in two pieces: ACK at once or every APDU waits ~40 ms.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            chunk = sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                head = self._recv_exact(sock, 2)
                if head is None:
                    break
                (n,) = struct.unpack(">H", head)
                msg = self._recv_exact(sock, n) if n else b""
                if msg is None:
                    break
                if self.first_message_at is None:
                    self.first_message_at = time.monotonic()
                if len(msg) == 1:
                    code = msg[0]
                    if code in (_CTRL_OFF, _CTRL_ON, _CTRL_RESET):
                        self.chip.reset()
                    elif code == _CTRL_ATR:
                        sock.sendall(struct.pack(">H", len(ATR)) + ATR)
                    continue
                index = self.apdu_count
                self.apdu_count += 1
                self.apdu_headers.append(msg[:4])
                if self.drop_after is not None and index >= self.drop_after:
                    break  # pulled out while the reader waits for this answer
                swap = self._swap
                if swap is not None and swap[0] == index:
                    self._swap = None
                    self.swap(swap[1], swap[2])
                if self.delay:
                    time.sleep(self.delay)
                answer = self.chip.process(msg)
                sock.sendall(struct.pack(">H", len(answer)) + answer)
        except OSError:
            pass
        finally:
            self._drop(sock)

    def __enter__(self) -> VirtualCard:
        self.insert()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def main(argv: list[str] | None = None) -> int:
    keys = [p["key"] for p in load_personas()] + [NOT_SSCARD["key"]]
    ap = argparse.ArgumentParser(description="Insert a virtual social-security card into vpcd until Ctrl-C")
    ap.add_argument("--persona", default="elder", choices=keys)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=35963)
    ap.add_argument("--t0-style", choices=["61", "6C"], default=None)
    args = ap.parse_args(argv)
    p = NOT_SSCARD if args.persona == NOT_SSCARD["key"] else persona(args.persona)
    card = VirtualCard(p, host=args.host, port=args.port, t0_style=args.t0_style)
    card.insert()
    print(f"inserted {args.persona} on {args.host}:{args.port}; Ctrl-C to remove", flush=True)
    try:
        while card.inserted:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        card.remove()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
