"""Pure framing and parsing for the resident-ID-card SAM module (GA 467), see docs/protocols.md section 2.

No I/O here: the driver (devices/idcard.py) and its twin (sim/idcard_twin.py) both build on it.
Every function that reads external bytes raises only `SamError` (or its subclasses) on bad input.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date
from functools import reduce
from operator import xor
from typing import NamedTuple, Protocol

from api import idnumber
from devices.nations import NATIONS, card_face_name, nation_name

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
HEADER_LEN = len(PREAMBLE) + 2  # preamble + LEN
MIN_LEN = 3  # CMD PARA CHK (a response has at least SW1 SW2 SW3 CHK)
MAX_LEN = 4096  # 30 10 (text + photo + fingerprint) needs ~2.3 KB; anything longer is noise

# Commands (CMD, PARA)
SAM_STATUS = (0x11, 0xFF)
SAM_ID = (0x12, 0xFF)
FIND_CARD = (0x20, 0x01)
SELECT_CARD = (0x20, 0x02)
READ_TEXT_PHOTO = (0x30, 0x01)
READ_TEXT_PHOTO_FP = (0x30, 0x10)

# SW3 codes (90 / 9F confirmed in public code; the others commonly cited, see docs/protocols.md)
SW_OK = 0x90
SW_FIND_OK = 0x9F
SW_NO_CARD = 0x80
SW_SELECT_FAILED = 0x81
SW_READ_FAILED = 0x41
SW_CHECKSUM = 0x10
SW_LENGTH = 0x11
SW_UNKNOWN_CMD = 0x21

TEXT_LEN = 256
PHOTO_LEN = 1024
LONG_TERM = "long-term"
_LONG_TERM_TEXT = "长期"


class SamError(ValueError):
    """The only error type the parsers in this module raise on bad external bytes."""


class FrameError(SamError):
    """A frame that cannot be a valid response (too short, wrong lengths)."""


class DecodeError(SamError):
    """A text block that cannot be trusted. `fault` is "unreadable" or "invalid_data"."""

    def __init__(self, fault: str, detail: str):
        super().__init__(detail)
        self.fault = fault
        self.detail = detail


# ------------------------------------------------------------------------------------------ frames


def checksum(body: bytes | bytearray | memoryview) -> int:
    """XOR of LEN and everything after it up to the checksum byte."""
    return reduce(xor, body, 0)


def build_frame(payload: bytes) -> bytes:
    """Preamble, LEN (payload + CHK), payload, CHK."""
    body = (len(payload) + 1).to_bytes(2, "big") + payload
    return PREAMBLE + body + bytes([checksum(body)])


def build_command(cmd: int, para: int, data: bytes = b"") -> bytes:
    return build_frame(bytes([cmd, para]) + data)


def build_response(sw1: int, sw2: int, sw3: int, data: bytes = b"") -> bytes:
    return build_frame(bytes([sw1, sw2, sw3]) + data)


class Response(NamedTuple):
    sw1: int
    sw2: int
    sw3: int
    data: bytes

    @property
    def ok(self) -> bool:
        return self.sw3 in (SW_OK, SW_FIND_OK)


@dataclass(frozen=True)
class BadFrame:
    """Reported by FrameParser in place of a frame it had to throw away."""

    reason: str  # "checksum" | "length"


def parse_response(payload: bytes) -> Response:
    """Payload (between LEN and CHK) of a response frame → (sw1, sw2, sw3, data)."""
    if len(payload) < 3:
        raise FrameError(f"response payload too short ({len(payload)} bytes)")
    return Response(payload[0], payload[1], payload[2], bytes(payload[3:]))


class FrameParser:
    """Streaming frame finder: feed it bytes as they arrive, get complete payloads back.

    Hand-written: no library speaks this framing. Resyncs after noise, bad checksums and absurd
    lengths by dropping one byte and scanning again; the buffer never exceeds one maximal frame plus
    the chunk being fed, and every loop step consumes a byte or stops, so it cannot hang.
    """

    def __init__(self, max_len: int = MAX_LEN, min_len: int = MIN_LEN):
        self.max_len = max_len
        self.min_len = min_len
        self._buf = bytearray()
        self.dropped = 0  # bytes thrown away as noise (for diagnostics)

    def reset(self) -> None:
        self._buf.clear()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | BadFrame]:
        self._buf += data
        out: list[bytes | BadFrame] = []
        buf = self._buf
        while True:
            start = buf.find(PREAMBLE)
            if start < 0:
                keep = _partial_preamble(buf)
                self.dropped += len(buf) - keep
                del buf[: len(buf) - keep]
                break
            if start:
                self.dropped += start
                del buf[:start]
            if len(buf) < HEADER_LEN:
                break
            n = int.from_bytes(buf[5:7], "big")
            if not self.min_len <= n <= self.max_len:
                out.append(BadFrame("length"))
                self.dropped += 1
                del buf[:1]
                continue
            end = HEADER_LEN + n
            if len(buf) < end:
                break
            if checksum(memoryview(buf)[5 : end - 1]) != buf[end - 1]:
                out.append(BadFrame("checksum"))
                self.dropped += 1
                del buf[:1]
                continue
            out.append(bytes(buf[HEADER_LEN : end - 1]))
            del buf[:end]
        return out


def _partial_preamble(buf: bytearray) -> int:
    """Length of the longest tail of buf that could be the start of a preamble."""
    for k in range(min(len(PREAMBLE) - 1, len(buf)), 0, -1):
        if buf[-k:] == PREAMBLE[:k]:
            return k
    return 0


# ------------------------------------------------------------------------------------- card data


class CardType(enum.StrEnum):
    RESIDENT = "resident"  # 居民身份证
    FOREIGN_PERMANENT = "foreign_permanent"  # 外国人永久居留身份证 ('I')
    HK_MO_TW = "hk_mo_tw"  # 港澳台居民居住证 ('J')


GENDERS = {"0": "未知", "1": "男", "2": "女", "9": "未说明"}  # GB/T 2261.1


@dataclass(frozen=True)
class IdCardData:
    """What the chip says. Personal fields are kept out of repr so a stray log line leaks nothing."""

    card_type: CardType
    name: str = field(repr=False)
    gender: str  # GB/T 2261.1 code
    nation: int | None  # GB 3304 code; None on 'I' cards and blank 'J' cards
    birth_date: date = field(repr=False)
    address: str = field(repr=False)
    id_number: str = field(repr=False)
    issuer: str  # 签发机关; authority code on 'I' cards
    valid_from: date
    valid_to: date | str  # a date or LONG_TERM
    english_name: str = field(default="", repr=False)  # 'I'
    nationality: str = ""  # 'I': ISO 3166-1 alpha-3
    pass_number: str = field(default="", repr=False)  # 'J': 通行证号码
    issue_count: int | None = None  # 'J': 签发次数
    card_version: str = ""  # 'I'
    photo_wlt: bytes = field(default=b"", repr=False)

    @property
    def gender_name(self) -> str:
        return GENDERS.get(self.gender, "")

    @property
    def nation_name(self) -> str:
        return nation_name(self.nation)

    @property
    def nation_face(self) -> str:
        return card_face_name(self.nation)

    @property
    def long_term(self) -> bool:
        return self.valid_to == LONG_TERM

    def is_expired(self, today: date) -> bool:
        return isinstance(self.valid_to, date) and self.valid_to < today


class WltDecoder(Protocol):
    def decode(self, wlt: bytes) -> bytes | None:
        """1024 bytes of WLT → a 102×126 BMP, or None when it cannot decode."""


class NoWltDecoder:
    """The default: WLT needs a licensed vendor library, so this never claims to decode."""

    def decode(self, wlt: bytes) -> bytes | None:
        return None


# ---------------------------------------------------------------------------------- text layouts

# (name, byte offset, byte length)
_RESIDENT = (
    ("name", 0, 30), ("gender", 30, 2), ("nation", 32, 4), ("birth", 36, 16), ("address", 52, 70),
    ("number", 122, 36), ("issuer", 158, 30), ("valid_from", 188, 16), ("valid_to", 204, 16),
)
_J_EXTRA = (("pass_number", 220, 18), ("issue_count", 238, 4))
_FOREIGN = (
    ("english_name", 0, 120), ("gender", 120, 2), ("number", 122, 30), ("nationality", 152, 6),
    ("name", 158, 30), ("valid_from", 188, 16), ("valid_to", 204, 16), ("birth", 220, 16),
    ("version", 236, 4), ("authority", 240, 8),
)
_TYPE_AT = 248
_FOREIGN_NUMBER = re.compile(r"^[A-Z]{3}\d{12}$")  # 2017 card: nationality + 12 digits
_J_PREFIXES = ("81", "82", "83")  # Hong Kong, Macao, Taiwan


def card_type_of(text: bytes) -> CardType:
    marker = bytes(text[_TYPE_AT : _TYPE_AT + 2])
    if marker == b"I\x00":
        return CardType.FOREIGN_PERMANENT
    if marker == b"J\x00":
        return CardType.HK_MO_TW
    return CardType.RESIDENT


def split_read_data(data: bytes, fingerprint: bool = False) -> tuple[bytes, bytes, bytes]:
    """30 01 (or 30 10) response data → (text, photo, fingerprint)."""
    head = 6 if fingerprint else 4
    if len(data) < head:
        raise FrameError(f"read data too short ({len(data)} bytes)")
    text_len = int.from_bytes(data[0:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    fp_len = int.from_bytes(data[4:6], "big") if fingerprint else 0
    if text_len != TEXT_LEN:
        raise FrameError(f"text length {text_len}, expected {TEXT_LEN}")
    if len(data) != head + text_len + photo_len + fp_len:
        raise FrameError(f"read data is {len(data)} bytes, lengths say {head + text_len + photo_len + fp_len}")
    t_end = head + text_len
    p_end = t_end + photo_len
    return bytes(data[head:t_end]), bytes(data[t_end:p_end]), bytes(data[p_end:])


def _fields(text: bytes, layout) -> dict[str, str]:
    # UCS-2LE; undecodable units become U+FFFD so bad bytes surface as invalid_data, never a crash.
    return {
        name: text[off : off + n].decode("utf-16-le", errors="replace").strip(" \x00")
        for name, off, n in layout
    }


def _date(value: str, what: str) -> date:
    if not re.fullmatch(r"\d{8}", value):
        raise DecodeError("invalid_data", f"{what} is not YYYYMMDD")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise DecodeError("invalid_data", f"{what} is not a real date") from None


def _valid_to(value: str) -> date | str:
    return LONG_TERM if value == _LONG_TERM_TEXT else _date(value, "valid_to")


def _gender(value: str) -> str:
    if value not in GENDERS:
        raise DecodeError("invalid_data", "gender code outside GB/T 2261.1")
    return value


def decode_text(text: bytes, photo: bytes = b"") -> IdCardData:
    """The 256-byte text block (any of the three card types) → IdCardData, or DecodeError."""
    if len(text) != TEXT_LEN:
        raise DecodeError("unreadable", f"text block is {len(text)} bytes, expected {TEXT_LEN}")
    kind = card_type_of(text)
    if kind is CardType.FOREIGN_PERMANENT:
        card = _decode_foreign(text, photo)
    else:
        card = _decode_resident(text, photo, kind)
    if isinstance(card.valid_to, date) and card.valid_to < card.valid_from:
        raise DecodeError("invalid_data", "valid_to before valid_from")
    return card


def _decode_resident(text: bytes, photo: bytes, kind: CardType) -> IdCardData:
    f = _fields(text, _RESIDENT + (_J_EXTRA if kind is CardType.HK_MO_TW else ()))
    if not f["name"]:
        raise DecodeError("invalid_data", "empty name")
    nation: int | None = None
    if f["nation"] or kind is CardType.RESIDENT:
        if not re.fullmatch(r"\d{2}", f["nation"]) or int(f["nation"]) not in NATIONS:
            raise DecodeError("invalid_data", "nation code outside GB 3304")
        nation = int(f["nation"])
    birth = _date(f["birth"], "birth_date")
    number = f["number"].upper()
    if not idnumber.is_valid(number):
        raise DecodeError("invalid_data", "ID number fails GB 11643 check")
    if number[6:14] != birth.strftime("%Y%m%d"):
        raise DecodeError("invalid_data", "ID number and birth date disagree")
    issue_count = None
    if kind is CardType.HK_MO_TW:
        if not number.startswith(_J_PREFIXES):
            raise DecodeError("invalid_data", "residence-permit number without 81/82/83 prefix")
        if f["issue_count"]:
            if not f["issue_count"].isdigit():
                raise DecodeError("invalid_data", "issue count is not a number")
            issue_count = int(f["issue_count"])
    return IdCardData(
        card_type=kind, name=f["name"], gender=_gender(f["gender"]), nation=nation, birth_date=birth,
        address=f["address"], id_number=number, issuer=f["issuer"],
        valid_from=_date(f["valid_from"], "valid_from"), valid_to=_valid_to(f["valid_to"]),
        pass_number=f.get("pass_number", ""), issue_count=issue_count, photo_wlt=bytes(photo),
    )


def _decode_foreign(text: bytes, photo: bytes) -> IdCardData:
    f = _fields(text, _FOREIGN)
    if not _FOREIGN_NUMBER.match(f["number"]):
        # e.g. the 2023 card (18 digits starting with 9): its chip layout is not public, so no guessing.
        raise DecodeError("unreadable", "permanent-residence number is not the 2017 15-character shape")
    name = f["name"] or f["english_name"]
    if not name:
        raise DecodeError("invalid_data", "empty name")
    if not re.fullmatch(r"[A-Z]{3}", f["nationality"]):
        raise DecodeError("invalid_data", "nationality is not a 3-letter code")
    return IdCardData(
        card_type=CardType.FOREIGN_PERMANENT, name=name, gender=_gender(f["gender"]), nation=None,
        birth_date=_date(f["birth"], "birth_date"), address="", id_number=f["number"],
        issuer=f["authority"], valid_from=_date(f["valid_from"], "valid_from"),
        valid_to=_valid_to(f["valid_to"]), english_name=f["english_name"], nationality=f["nationality"],
        card_version=f["version"], photo_wlt=bytes(photo),
    )


def decode_read_response(data: bytes, fingerprint: bool = False) -> IdCardData:
    """Data of a successful 30 01 / 30 10 answer → IdCardData (raises SamError subclasses)."""
    try:
        text, photo, _fp = split_read_data(data, fingerprint)
    except FrameError as exc:
        raise DecodeError("unreadable", str(exc)) from None
    return decode_text(text, photo)


# ------------------------------------------------------------------------ encoding (for the twin)


def _put(buf: bytearray, off: int, n: int, value: str) -> None:
    raw = value.encode("utf-16-le")
    if len(raw) > n:
        raise ValueError(f"field at {off} holds {n} bytes, value needs {len(raw)}")
    buf[off : off + n] = raw + " ".encode("utf-16-le") * ((n - len(raw)) // 2)


def _ymd(value: date | str) -> str:
    if value == LONG_TERM:
        return _LONG_TERM_TEXT
    return value.strftime("%Y%m%d") if isinstance(value, date) else str(value)


def encode_text(card: IdCardData) -> bytes:
    """IdCardData → the 256-byte block a chip holds (the twin's side; raises ValueError on overflow)."""
    buf = bytearray(" ".encode("utf-16-le") * (TEXT_LEN // 2))
    if card.card_type is CardType.FOREIGN_PERMANENT:
        values = {
            "english_name": card.english_name, "gender": card.gender, "number": card.id_number,
            "nationality": card.nationality, "name": card.name, "valid_from": _ymd(card.valid_from),
            "valid_to": _ymd(card.valid_to), "birth": _ymd(card.birth_date), "version": card.card_version,
            "authority": card.issuer,
        }
        layout = _FOREIGN
        marker = "I"
    else:
        values = {
            "name": card.name, "gender": card.gender,
            "nation": "" if card.nation is None else f"{card.nation:02d}", "birth": _ymd(card.birth_date),
            "address": card.address, "number": card.id_number, "issuer": card.issuer,
            "valid_from": _ymd(card.valid_from), "valid_to": _ymd(card.valid_to),
            "pass_number": card.pass_number,
            "issue_count": "" if card.issue_count is None else f"{card.issue_count:02d}",
        }
        layout = _RESIDENT
        marker = ""
        if card.card_type is CardType.HK_MO_TW:
            layout = _RESIDENT + _J_EXTRA
            marker = "J"
    for name, off, n in layout:
        _put(buf, off, n, values[name])
    if marker:
        _put(buf, _TYPE_AT, 2, marker)
    return bytes(buf)


def encode_read_data(text: bytes, photo: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + len(photo).to_bytes(2, "big") + text + photo
