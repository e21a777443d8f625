"""Social-security card (社保卡) driver over PC/SC (pcscd + pyscard's low-level `scard` API).

Wire format: docs/protocols.md section 1. Records are addressed by tag (record identifier) with the SFI in P2,
never by record number. The pure parts (APDU building, T=0 61xx/6Cxx handling, record parsing, field
decoding) are module functions, unit-tested without a reader.

Watching readers: pyscard's CardMonitor stops for good when pcscd restarts or a reader is unplugged, so
this driver runs its own polling thread on SCardGetStatusChange (with a timeout) and re-establishes the
PC/SC context after any error. The card counts PIN tries; the driver only reports what the card says.

PIN bound to the card read: the connection of a read stays open (shared, never reset) and VERIFY goes
to it between two checks of the card's identity (card identifier, card number, ID number); a card
swapped at any point, even one pcscd never saw leave, gives a failure value (REMOVED), never the first
card's data with the second card's PIN. Card conversations run in a helper process by default, so a
busy UI thread does not slow every PC/SC call down (see _Helper).
"""

from __future__ import annotations

import logging
import pickle
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from api.idnumber import is_valid
from devices.base import (
    CardFault,
    CardInserted,
    CardReadFailed,
    CardReadOk,
    CardRemoved,
    DeviceStatus,
    Emit,
    MediaStatus,
    PinOutcome,
    PinResult,
    ReaderStatusChanged,
    SSCardData,
)

log = logging.getLogger(__name__)

SSSE_AID = "sx1.sh.社会保障".encode("gbk")  # 7378312E73682EC9E7BBE1B1A3D5CF
SELECT_SSSE = bytes([0x00, 0xA4, 0x04, 0x00, len(SSSE_AID)]) + SSSE_AID
EF05_SFI, EF06_SFI = 5, 6
# tag -> value length (docs/protocols.md tables); Le asked = length + 2 (tag and length bytes).
EF05_FIELDS = {0x01: 16, 0x02: 1, 0x03: 4, 0x04: 12, 0x05: 4, 0x06: 4, 0x07: 9}
EF06_FIELDS = {0x08: 18, 0x09: 30, 0x4E: 20, 0x0A: 1, 0x0B: 1, 0x0C: 3, 0x0D: 4}
REQUIRED = {EF05_SFI: (0x01, 0x03, 0x07), EF06_SFI: (0x08, 0x09)}
GET_CHALLENGE = bytes.fromhex("0084000008")
_MAX_T0_ROUNDS = 16  # bound on 61xx / 6Cxx follow-ups for one command

SW_OK = 0x9000
_SCARD_PRESENT = 0x0004  # pcsc-lite's SCardStatus state bit; pyscard does not export it


class RecordError(ValueError):
    """The documented error of the parsers below: bytes from the card that do not fit the format."""


class ResponseLost(RecordError):
    """GET RESPONSE found no response waiting (6985) right after the card announced one (61xx): the
    card was reset or another card answers."""


# ---------------------------------------------------------------- pure: APDUs and T=0


def build_read_record(tag: int, sfi: int) -> bytes:
    """READ RECORD by record identifier (tag) in the EF with short file identifier `sfi`."""
    size = (EF05_FIELDS | EF06_FIELDS).get(tag, 0)
    return bytes([0x00, 0xB2, tag, (sfi << 3) | 0x00, (size + 2) & 0xFF])


def build_verify(pin: str) -> bytes:
    """VERIFY with the PIN as packed BCD (odd length padded with F). ValueError if not 4-12 digits."""
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("PIN must be 4-12 digits")
    packed = bytes.fromhex(pin + ("F" if len(pin) % 2 else ""))
    return bytes([0x00, 0x20, 0x00, 0x00, len(packed)]) + packed


def build_external_auth(cryptogram: bytes) -> bytes:
    return bytes([0x00, 0x82, 0x00, 0x0A, len(cryptogram)]) + cryptogram


Transmit = Callable[[bytes], bytes]
"""Sends one APDU, returns the raw response (data + SW1 SW2); raises on transport failure."""


def split_sw(resp: bytes) -> tuple[bytes, int]:
    if len(resp) < 2:
        raise RecordError("response shorter than a status word")
    return resp[:-2], (resp[-2] << 8) | resp[-1]


def t0_exchange(transmit: Transmit, apdu: bytes) -> tuple[bytes, int]:
    """One command with T=0 follow-ups: 6Cxx → repeat with Le = xx; 61xx → GET RESPONSE xx (data
    accumulated). Bounded: at most _MAX_T0_ROUNDS extra exchanges. Raises RecordError on a short answer,
    ResponseLost if the response announced is gone."""
    data, sw = split_sw(transmit(apdu))
    acc = b""
    for _ in range(_MAX_T0_ROUNDS):
        if sw >> 8 == 0x6C:
            apdu = _with_le(apdu, sw & 0xFF)
            data, sw = split_sw(transmit(apdu))
        elif sw >> 8 == 0x61:
            acc += data
            data, sw = split_sw(transmit(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF])))
            if sw == 0x6985:
                raise ResponseLost("GET RESPONSE: no response pending")
        else:
            return acc + data, sw
    raise RecordError("too many T=0 follow-ups")


def _with_le(apdu: bytes, le: int) -> bytes:
    if len(apdu) == 5:  # case 2: P3 is Le
        return apdu[:4] + bytes([le])
    if len(apdu) > 5 and len(apdu) == 5 + apdu[4] + 1:  # case 4: last byte is Le
        return apdu[:-1] + bytes([le])
    return apdu + bytes([le])


# ---------------------------------------------------------------- pure: records and fields


def parse_record(resp: bytes, tag: int) -> bytes:
    """Value of a `tag | len | value` record (response data without SW). RecordError if malformed."""
    if len(resp) < 2:
        raise RecordError(f"record {tag:02X}: too short")
    if resp[0] != tag:
        raise RecordError(f"record {tag:02X}: card answered tag {resp[0]:02X}")
    n = resp[1]
    if n & 0x80 or len(resp) < 2 + n:
        raise RecordError(f"record {tag:02X}: bad length")
    return resp[2 : 2 + n]


def decode_text(value: bytes) -> str:
    """GB18030 text (a superset of GBK, so rare characters decode), zero/space padding removed."""
    try:
        return value.rstrip(b"\x00\xff ").decode("gb18030").strip()
    except UnicodeDecodeError as e:
        raise RecordError("text not GB18030") from e


def decode_ascii(value: bytes) -> str:
    try:
        return value.rstrip(b"\x00\xff ").decode("ascii").strip()
    except UnicodeDecodeError as e:
        raise RecordError("text not ASCII") from e


def decode_bcd_date(value: bytes) -> date | None:
    """BCD YYYYMMDD; all zeros or all FF means "none" (e.g. no expiry). RecordError if not a date."""
    if len(value) != 4:
        raise RecordError("date must be 4 bytes")
    if value in (b"\x00" * 4, b"\xff" * 4):
        return None
    digits = value.hex()
    if not digits.isdigit():
        raise RecordError("date is not BCD")
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError as e:
        raise RecordError("not a calendar date") from e


def _code(value: bytes) -> str:
    """A one-byte code stored either as an ASCII digit or as binary."""
    if not value:
        return ""
    b = value[0]
    return chr(b) if 0x30 <= b <= 0x39 else str(b)


def decode_ef05(records: dict[int, bytes | None]) -> dict:
    """EF05 values by tag (None = record absent) → card fields. RecordError if malformed."""
    for tag in REQUIRED[EF05_SFI]:
        if not records.get(tag):
            raise RecordError(f"EF05 record {tag:02X} missing")
    r = {t: records.get(t) or b"" for t in EF05_FIELDS}
    return {
        "card_id": r[0x01].hex().upper(),
        "card_type": _code(r[0x02]),
        "card_version": decode_ascii(r[0x03]),
        "init_org": decode_ascii(r[0x04]),
        "issue_date": decode_bcd_date(r[0x05]) if r[0x05] else None,
        "expiry_date": decode_bcd_date(r[0x06]) if r[0x06] else None,
        "card_number": decode_ascii(r[0x07]),
    }


def decode_ef06(records: dict[int, bytes | None]) -> dict:
    """EF06 values by tag → holder fields; 姓名扩展 (4E) is appended to 姓名. RecordError if malformed."""
    for tag in REQUIRED[EF06_SFI]:
        if not records.get(tag):
            raise RecordError(f"EF06 record {tag:02X} missing")
    r = {t: records.get(t) or b"" for t in EF06_FIELDS}
    # Join the raw bytes before decoding: a card may split a character across the two records.
    name = decode_text(r[0x09].rstrip(b"\x00\xff ") + r[0x4E])
    place = r[0x0C].hex().upper().rstrip("F")
    return {
        "ssn": decode_ascii(r[0x08]).upper(),
        "name": name,
        "gender": _code(r[0x0A]),
        "nation": r[0x0B][0] if r[0x0B] else None,
        "birth_place": place,
        "birth_date": decode_bcd_date(r[0x0D]) if r[0x0D] else None,
    }


def build_card_data(ef05: dict, ef06: dict) -> SSCardData:
    """Combine decoded fields; RecordError if the ID number fails GB 11643 or the name is empty."""
    if not is_valid(ef06["ssn"]):
        raise RecordError("ID number fails the GB 11643 check")
    if not ef06["name"]:
        raise RecordError("empty name")
    return SSCardData(**ef05, **ef06)


# ---------------------------------------------------------------- PSAM (3rd-generation cards)


class Psam(Protocol):
    """The terminal's security module (a PC/SC slot of its own on real kiosks)."""

    def external_auth_cryptogram(self, card_id: str, challenge: bytes) -> bytes | None:
        """16-byte cryptogram for EXTERNAL AUTHENTICATE (00 82 00 0A 10 ..), or None without a PSAM."""


class NullPsam:
    """No security module fitted: 3rd-generation cards then report CardFault.NEEDS_SAM."""

    def external_auth_cryptogram(self, card_id: str, challenge: bytes) -> bytes | None:
        return None


# ---------------------------------------------------------------- PC/SC transport


class _Fail(Exception):
    def __init__(self, fault: CardFault, detail: str = ""):
        super().__init__(fault, detail)
        self.fault, self.detail = fault, detail


class _Changed(_Fail):
    """Another card (or the same card after a reset) answers on the connection: whatever was read or
    checked before belongs to a card that is no longer there. Reported as REMOVED."""

    def __init__(self, detail: str, reader: str = ""):
        super().__init__(CardFault.REMOVED, detail)
        self.reader = reader


def _scard():
    from smartcard import scard  # imported lazily: the pure parsers need no PC/SC library

    return scard


def _hr_name(hr: int) -> str:
    return f"0x{hr & 0xFFFFFFFF:08X}"


@dataclass
class _Conn:
    """One connected card handle with a deadline; every failure becomes a _Fail."""

    sc: Any  # pyscard's scard module (loaded lazily)
    card: int
    proto: int
    reader: str
    deadline: float

    def transmit(self, apdu: bytes) -> bytes:
        if time.monotonic() > self.deadline:
            raise _Fail(CardFault.TIMEOUT, "deadline passed")
        hr, resp = self.sc.SCardTransmit(self.card, self.proto, list(apdu))
        if hr != self.sc.SCARD_S_SUCCESS or len(resp) < 2:
            # vpcd answers an empty response when the card vanished mid-command; pcscd only notices
            # the removal at its next presence poll, so wait for it before calling the card unreadable.
            raise self._why_failed(hr)
        return bytes(resp)

    def _why_failed(self, hr: int) -> _Fail:
        sc = self.sc
        detail = f"transmit {_hr_name(hr)}"
        if hr == sc.SCARD_W_RESET_CARD:
            return _Changed(detail)  # someone reset the card: it may not even be the same one
        if hr in (sc.SCARD_W_REMOVED_CARD, sc.SCARD_E_NO_SMARTCARD):
            return _Fail(CardFault.REMOVED, detail)
        if hr in (sc.SCARD_E_NO_SERVICE, sc.SCARD_E_SERVICE_STOPPED, sc.SCARD_E_READER_UNAVAILABLE):
            return _Fail(CardFault.NO_READER, detail)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            res = sc.SCardStatus(self.card)
            if res[0] != sc.SCARD_S_SUCCESS or not res[2] & _SCARD_PRESENT:
                return _Fail(CardFault.REMOVED, detail)
            time.sleep(0.05)
        return _Fail(CardFault.UNREADABLE, detail)

    def cmd(self, apdu: bytes) -> tuple[bytes, int]:
        try:
            return t0_exchange(self.transmit, apdu)
        except ResponseLost as e:
            raise _Changed(str(e)) from e
        except RecordError as e:
            raise _Fail(CardFault.UNREADABLE, str(e)) from e

    def close(self) -> None:
        try:
            self.sc.SCardDisconnect(self.card, self.sc.SCARD_LEAVE_CARD)
        except Exception:  # the handle may already be dead with its context
            pass


def _fault_for_connect(sc, hr: int) -> CardFault:
    if hr in (sc.SCARD_E_NO_SMARTCARD, sc.SCARD_W_REMOVED_CARD, sc.SCARD_W_UNPOWERED_CARD):
        return CardFault.NO_CARD
    if hr in (
        sc.SCARD_E_UNKNOWN_READER,
        sc.SCARD_E_READER_UNAVAILABLE,
        sc.SCARD_E_NO_SERVICE,
        sc.SCARD_E_SERVICE_STOPPED,
        sc.SCARD_E_NO_READERS_AVAILABLE,
    ):
        return CardFault.NO_READER
    return CardFault.UNREADABLE


Identity = tuple[str, str, str]
"""(卡识别码 card_id, card number, ID number): what VERIFY is bound to."""


def identity_of(data: SSCardData) -> Identity:
    return (data.card_id, data.card_number, data.ssn)


@dataclass
class _Bound:
    """The card read last, still connected: VERIFY goes to this handle and only after the card behind it
    has shown the same identity again."""

    conn: _Conn
    identity: Identity
    removals: int  # the watcher's removal count when the read began
    reader: str


class _Pcsc:
    """The PC/SC resources kept between conversations: the command context and the bound card.
    Released when the driver stops or is collected: pcscd allows each client only a few contexts."""

    def __init__(self):
        self.ctx: int | None = None
        self.bound: _Bound | None = None

    def unbind(self) -> None:
        bound, self.bound = self.bound, None
        if bound is not None:
            bound.conn.close()

    def close(self) -> None:
        self.unbind()
        ctx, self.ctx = self.ctx, None
        if ctx is not None:
            try:
                _scard().SCardReleaseContext(ctx)
            except Exception:
                pass


_STALE_CONTEXT = ("SCARD_E_INVALID_HANDLE", "SCARD_E_NO_SERVICE", "SCARD_E_SERVICE_STOPPED")


def _pick_reader(sc, ctx, reader_name: str | None) -> tuple[str, bool]:
    """(reader, card present). The named reader, else the first with a card, else the first."""
    hr, readers = sc.SCardListReaders(ctx, [])
    if hr in (sc.SCARD_E_NO_SERVICE, sc.SCARD_E_INVALID_HANDLE, sc.SCARD_E_SERVICE_STOPPED):
        raise _Fail(CardFault.NO_READER, "pcscd")
    if hr != sc.SCARD_S_SUCCESS or not readers:
        raise _Fail(CardFault.NO_READER, "no reader")
    if reader_name is not None:
        if reader_name not in readers:
            raise _Fail(CardFault.NO_READER, "reader not found")
        readers = [reader_name]
    hr, result = sc.SCardGetStatusChange(ctx, 0, [(r, sc.SCARD_STATE_UNAWARE) for r in readers])
    if hr != sc.SCARD_S_SUCCESS:
        raise _Fail(CardFault.NO_READER, _hr_name(hr))
    for reader, event, _atr in result:
        if event & sc.SCARD_STATE_PRESENT:
            return reader, True
    return readers[0], False


Changed = str | None
"""The reader where another card turned out to answer (to be reported as removal + insertion), or None."""


class _Commands:
    """The card conversations and the PC/SC state they keep between calls: the command context, the
    card bound by the last read, the removals seen and a prefetched read. Runs in the driver's
    process, or alone in a helper process (see _Helper)."""

    def __init__(self, reader_name: str | None, psam: Psam):
        self.reader_name = reader_name
        self.psam = psam
        self.lock = threading.Lock()  # one card conversation at a time
        self.pcsc = _Pcsc()
        self.removals = 0  # card removals seen; a read from before one is stale
        self.prefetched: tuple[int, CardReadOk] | None = None

    # ---- entry points: never raise
    def read(self, timeout: float) -> tuple[CardReadOk | CardReadFailed, Changed]:
        try:
            return self._locked(timeout, self._read_or_prefetched), None
        except _Changed as f:
            self._changed()
            return CardReadFailed(f.fault, f.detail), f.reader
        except _Fail as f:
            return CardReadFailed(f.fault, f.detail), None
        except Exception as e:  # never raise to the session: an unknown failure is "unreadable"
            log.exception("card read failed")
            return CardReadFailed(CardFault.UNREADABLE, type(e).__name__), None

    def verify(self, pin: str, timeout: float) -> tuple[PinResult, Changed]:
        try:
            apdu = build_verify(pin)
        except ValueError:
            return PinResult(PinOutcome.FAILED, fault=CardFault.INVALID_DATA), None
        try:
            return self._locked(timeout, lambda deadline: self._verify_locked(apdu, deadline)), None
        except _Changed as f:
            self._changed()
            return PinResult(PinOutcome.FAILED, fault=f.fault), f.reader
        except _Fail as f:
            return PinResult(PinOutcome.FAILED, fault=f.fault), None
        except Exception:
            log.exception("PIN verify failed")
            return PinResult(PinOutcome.FAILED, fault=CardFault.UNREADABLE), None

    def prefetch(self) -> None:
        """Read the card just reported, so read() has the answer when the session asks."""
        if not self.lock.acquire(timeout=1.0):
            return
        try:
            removals = self.removals
            bound = self.pcsc.bound
            if bound is not None and bound.removals == removals:
                return  # the session read this card already: its binding must stay the one it showed
            self.prefetched = None
            result = self._read_locked(time.monotonic() + 5.0)
            if self.removals == removals:
                self.prefetched = (removals, result)
        except _Fail as f:  # read() will try again and report it
            log.debug("card prefetch failed: %s %s", f.fault.value, f.detail)
        except Exception:
            log.exception("card prefetch failed")
        finally:
            self.lock.release()

    def gone(self, wait: bool = True) -> None:
        """A removal was seen: the bound card and any prefetched data belong to someone who has left."""
        self.removals += 1
        self.prefetched = None
        if self.lock.acquire(blocking=wait):  # else the conversation in progress finds out itself
            try:
                self.pcsc.unbind()
            finally:
                self.lock.release()

    def close(self) -> None:
        with self.lock:
            self.prefetched = None
            self.pcsc.close()

    # ---- internals (under self.lock)
    def _locked(self, timeout: float, op):
        deadline = time.monotonic() + timeout
        if not self.lock.acquire(timeout=timeout):
            raise _Fail(CardFault.TIMEOUT, "reader busy")
        try:
            return op(deadline)
        finally:
            self.lock.release()

    def _changed(self) -> None:
        """Another card answered where the read one was: nothing read so far may be used."""
        self.removals += 1
        self.prefetched = None
        self.pcsc.unbind()

    def _connect(self, deadline: float) -> _Conn:
        """Connect to the card on the long-lived command context (made again if pcscd restarted).
        A named reader is connected to directly: asking pcscd first would only cost round trips."""
        sc = _scard()
        stale = {getattr(sc, n) for n in _STALE_CONTEXT}
        for attempt in (1, 2):
            if self.pcsc.ctx is None:
                hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
                if hr != sc.SCARD_S_SUCCESS:
                    raise _Fail(CardFault.NO_READER, "pcscd")
                self.pcsc.ctx = ctx
            ctx = self.pcsc.ctx
            try:
                reader = self.reader_name or _pick_reader(sc, ctx, None)[0]
            except _Fail as f:
                if f.detail == "pcscd" and attempt == 1:
                    self.pcsc.close()
                    continue
                raise
            # Shared: the identity checks, not exclusivity, bind VERIFY to the card read (pcscd cannot
            # tell a swap within one presence poll anyway), and no stale handle can lock the reader.
            hr, card, proto = sc.SCardConnect(
                ctx, reader, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
            )
            if hr == sc.SCARD_S_SUCCESS:
                return _Conn(sc, card, proto, reader, deadline)
            if hr in stale and attempt == 1:
                self.pcsc.close()  # the context died with an earlier pcscd
                continue
            raise _Fail(_fault_for_connect(sc, hr), f"connect {_hr_name(hr)}")
        raise _Fail(CardFault.NO_READER, "pcscd")

    def _read_or_prefetched(self, deadline: float) -> CardReadOk:
        pre, self.prefetched = self.prefetched, None
        bound = self.pcsc.bound
        if pre is not None and bound is not None and pre[0] == self.removals == bound.removals:
            return pre[1]
        return self._read_locked(deadline)

    def _read_locked(self, deadline: float) -> CardReadOk:
        self.pcsc.unbind()
        removals = self.removals
        conn = self._connect(deadline)
        try:
            data = self._read_card(conn)
        except _Changed as f:
            conn.close()
            f.reader = conn.reader
            raise
        except BaseException:
            conn.close()
            raise
        self.pcsc.bound = _Bound(conn, identity_of(data), removals, conn.reader)
        return CardReadOk(data)

    def _verify_locked(self, apdu: bytes, deadline: float) -> PinResult:
        bound = self.pcsc.bound
        if bound is None:
            raise _Fail(CardFault.NO_CARD, "no card read to check the PIN against")
        if bound.removals != self.removals:
            self.pcsc.unbind()
            raise _Fail(CardFault.REMOVED, "removed since it was read")
        bound.conn.deadline = deadline
        keep = False
        try:
            self._check_identity(bound)  # before: the PIN goes to no other card
            _data, sw = bound.conn.cmd(apdu)
            self._check_identity(bound)  # after: the answer came from the card that was read
            result = pin_result(sw)
            keep = result.outcome is PinOutcome.WRONG  # the person may try again on the same card
            return result
        except _Changed as f:
            f.reader = bound.reader
            raise
        finally:
            if not keep:
                self.pcsc.unbind()

    def _check_identity(self, bound: _Bound) -> None:
        if self._read_identity(bound.conn) != bound.identity:
            raise _Changed("another card answers")

    def _read_identity(self, conn: _Conn) -> Identity:
        values: dict[int, bytes] = {}
        for sfi, tag in ((EF05_SFI, 0x01), (EF05_SFI, 0x07), (EF06_SFI, 0x08)):
            data, sw = conn.cmd(build_read_record(tag, sfi))
            if sw == 0x6982 and sfi == EF06_SFI and not isinstance(self.psam, NullPsam):
                self._external_auth(conn, values[0x01].hex().upper())  # 3rd generation: unlock again
                data, sw = conn.cmd(build_read_record(tag, sfi))
            if sw != SW_OK:
                raise _Changed(f"identity record {tag:02X}: {sw:04X}")
            try:
                values[tag] = parse_record(data, tag)
            except RecordError as e:
                raise _Changed(f"identity record {tag:02X}: {e}") from e
        try:
            return (values[0x01].hex().upper(), decode_ascii(values[0x07]), decode_ascii(values[0x08]).upper())
        except RecordError as e:
            raise _Changed(f"identity: {e}") from e

    def _select(self, conn: _Conn) -> None:
        _data, sw = conn.cmd(SELECT_SSSE)
        if sw != SW_OK:
            raise _Fail(CardFault.NOT_SSCARD, f"select SSSE {sw:04X}")

    def _records(self, conn: _Conn, sfi: int, fields: dict[int, int]) -> dict[int, bytes | None]:
        out: dict[int, bytes | None] = {}
        for tag in fields:
            data, sw = conn.cmd(build_read_record(tag, sfi))
            if sw == SW_OK:
                try:
                    out[tag] = parse_record(data, tag)
                except RecordError as e:
                    raise _Fail(CardFault.INVALID_DATA, str(e)) from e
            elif sw in (0x6A83, 0x6A82):
                out[tag] = None  # record absent on this card
            elif sw == 0x6982:
                raise _Fail(CardFault.NEEDS_SAM, f"EF{sfi:02X} record {tag:02X}: 6982")
            elif sw == 0x6986:
                # the application selected a moment ago is no longer: the card was reset or swapped
                raise _Changed(f"EF{sfi:02X} record {tag:02X}: 6986")
            else:
                raise _Fail(CardFault.UNREADABLE, f"EF{sfi:02X} record {tag:02X}: {sw:04X}")
        return out

    def _external_auth(self, conn: _Conn, card_id: str) -> None:
        """3rd-generation cards: GET CHALLENGE, PSAM cryptogram, EXTERNAL AUTHENTICATE."""
        challenge, sw = conn.cmd(GET_CHALLENGE)
        if sw != SW_OK:
            return  # card has no challenge to give: EF06 will say whether it needs one
        cryptogram = self.psam.external_auth_cryptogram(card_id, challenge)
        if cryptogram is None:
            return
        _data, sw = conn.cmd(build_external_auth(cryptogram))
        if sw != SW_OK:
            raise _Fail(CardFault.NEEDS_SAM, f"external authenticate {sw:04X}")

    def _read_card(self, conn: _Conn) -> SSCardData:
        self._select(conn)
        ef05_raw = self._records(conn, EF05_SFI, EF05_FIELDS)
        try:
            ef05 = decode_ef05(ef05_raw)
        except RecordError as e:
            raise _Fail(CardFault.INVALID_DATA, str(e)) from e
        gen = ef05["card_version"][:1]
        if gen.isdigit() and int(gen) >= 3 and not isinstance(self.psam, NullPsam):
            self._external_auth(conn, ef05["card_id"])
        ef06_raw = self._records(conn, EF06_SFI, EF06_FIELDS)
        # The card identifier again, last: a card swapped after the first record was read shows another.
        data, sw = conn.cmd(build_read_record(0x01, EF05_SFI))
        try:
            same = sw == SW_OK and parse_record(data, 0x01).hex().upper() == ef05["card_id"]
        except RecordError:
            same = False
        if not same:
            raise _Changed("card identifier changed during the read")
        try:
            return build_card_data(ef05, decode_ef06(ef06_raw))
        except RecordError as e:
            raise _Fail(CardFault.INVALID_DATA, str(e)) from e


# ---------------------------------------------------------------- helper process


class _HelperDown(Exception):
    pass


class _Pipe:
    """Pickled messages, each after its 4-byte length, over one end of a socketpair to our own helper.

    The socket stays blocking (a Python-level timeout would add a poll() per call) and the answer's
    deadline is the kernel's SO_RCVTIMEO: the driver gives up the GIL once to send and once to
    receive, where each time winning it back may cost a switch interval."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buf = b""

    def send(self, obj: object) -> None:
        data = pickle.dumps(obj)
        self.sock.sendall(struct.pack(">I", len(data)) + data)

    def recv(self, timeout: float | None = None) -> Any:
        """The next message; EOFError when the other end closed, TimeoutError after `timeout`."""
        if timeout is not None:
            sec = max(timeout, 0.001)
            self.sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(sec), int(sec % 1 * 1e6))
            )
        buf = self._buf
        while True:
            if len(buf) >= 4:
                (n,) = struct.unpack(">I", buf[:4])
                if len(buf) >= 4 + n:
                    self._buf = buf[4 + n :]
                    return pickle.loads(buf[4 : 4 + n])
            try:
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError as e:  # SO_RCVTIMEO ran out
                raise TimeoutError("no answer") from e
            if not chunk:
                raise EOFError
            buf += chunk

    def close(self) -> None:
        self.sock.close()


class _Helper:
    """_Commands in a child process of their own, same methods. Every PC/SC call gives up the GIL and
    must win it back; with the kiosk's UI thread busy drawing, that costs up to the switch interval
    (5 ms) per call, ~100 ms for a read. The child holds no GIL anyone else wants, and the driver
    waits on one pipe instead. The child ends when the pipe closes (the driver or the kiosk ended)."""

    def __init__(self, reader_name: str | None, psam: Psam):
        self._args = (reader_name, psam)
        self._proc: subprocess.Popen | None = None
        self._conn = None
        self._call_lock = threading.Lock()  # a request and its answer
        self._send_lock = threading.Lock()  # one message at a time on the pipe

    def warm(self) -> None:
        with self._call_lock:
            self._ensure()

    def _ensure(self) -> None:
        if self._conn is not None:
            return
        parent, child = socket.socketpair()
        root = str(Path(__file__).resolve().parents[1])
        code = f"import sys; sys.path.insert(0, {root!r}); from devices.sscard import _helper_main; _helper_main()"
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, str(child.fileno())],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        conn = _Pipe(parent)
        try:
            conn.send(self._args)
        except Exception:
            conn.close()
            proc.kill()
            proc.wait()
            raise
        with self._send_lock:
            self._proc, self._conn = proc, conn

    def _kill(self) -> None:
        with self._send_lock:
            proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.kill()
            proc.wait()

    def _call(self, msg: tuple, timeout: float) -> Any:
        with self._call_lock:
            try:
                self._ensure()
                conn = self._conn
                if conn is None:
                    raise _HelperDown("no helper")
                with self._send_lock:
                    conn.send(msg)
                try:
                    return conn.recv(timeout)
                except TimeoutError:
                    self._kill()  # stuck: a fresh helper serves the next request
                    raise _Fail(CardFault.TIMEOUT, "card helper did not answer") from None
            except (EOFError, OSError) as e:
                self._kill()
                raise _HelperDown(type(e).__name__) from e

    def _tell(self, msg: tuple) -> None:
        with self._send_lock:
            if self._conn is None:
                return  # no helper, so nothing read to forget or prefetch for
            try:
                self._conn.send(msg)
            except OSError:
                pass

    def read(self, timeout: float) -> tuple[CardReadOk | CardReadFailed, Changed]:
        for attempt in (1, 2):
            try:
                return self._call(("read", timeout), timeout + 3.0)
            except _Fail as f:
                return CardReadFailed(f.fault, f.detail), None
            except _HelperDown as e:
                log.warning("card helper ended (%s); starting another", e)
                if attempt == 2:
                    return CardReadFailed(CardFault.UNREADABLE, "card helper ended"), None
        raise AssertionError("unreachable")

    def verify(self, pin: str, timeout: float) -> tuple[PinResult, Changed]:
        try:
            return self._call(("verify", pin, timeout), timeout + 3.0)
        except _Fail as f:
            return PinResult(PinOutcome.FAILED, fault=f.fault), None
        except _HelperDown:  # the card read went with the helper: the session starts over
            return PinResult(PinOutcome.FAILED, fault=CardFault.REMOVED), None

    def prefetch(self) -> None:
        self._tell(("prefetch",))

    def gone(self, wait: bool = True) -> None:
        self._tell(("gone",))

    def close(self) -> None:
        with self._send_lock:
            proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if conn is not None:
            conn.close()  # the helper reads EOF, releases its PC/SC handles and exits
        if proc is not None:
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _helper_main() -> None:
    """The helper process: serve _Commands over the socket whose descriptor is the last argument."""
    conn = _Pipe(socket.socket(fileno=int(sys.argv[-1])))
    reader_name, psam = conn.recv()
    cmds = _Commands(reader_name, psam)
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if not isinstance(msg, tuple) or not msg:
                break  # only our own kiosk process writes here: anything else ends the helper
            op = msg[0]
            if op == "read":
                conn.send(cmds.read(msg[1]))
            elif op == "verify":
                conn.send(cmds.verify(msg[1], msg[2]))
            elif op == "prefetch":
                cmds.prefetch()
            elif op == "gone":
                cmds.gone()
    finally:
        cmds.close()


# ---------------------------------------------------------------- the driver


class PcscCardReader:
    """devices.base.SSCardReader over PC/SC. reader_name None = the first reader holding a card.

    The card read by read() stays connected (shared, never reset) until VERIFY, removal or the next
    read, and VERIFY goes to that connection only after the card has answered with the same card
    identifier, card number and ID number; the identity is checked again after VERIFY, so a card
    swapped at any point yields a failure value, never the first card's data with the second card's
    PIN. A swap pcscd did not see is reported as CardRemoved + CardInserted.

    With `prefetch` the watcher has the card read as soon as pcscd reports it, and read() returns that
    result if no removal was seen since. With `isolate` (the default) the card conversations run in a
    helper process (see _Helper); without it, in the calling thread.
    """

    def __init__(
        self,
        reader_name: str | None = None,
        psam: Psam | None = None,
        poll_interval: float = 0.2,
        prefetch: bool = True,
        isolate: bool = True,
    ):
        self.reader_name = reader_name
        self.psam: Psam = psam or NullPsam()
        self.poll_interval = poll_interval
        self.prefetch = prefetch
        self._emit: Emit | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._mon_ctx: int | None = None
        self._status: DeviceStatus | None = None  # None until the watcher announced its first status
        self._present: dict[str, bool] = {}
        self._cmds: _Commands | _Helper = (_Helper if isolate else _Commands)(reader_name, self.psam)
        weakref.finalize(self, self._cmds.close)

    # ---- watching
    def start(self, emit: Emit) -> None:
        if self._thread is not None:
            return
        self._emit = emit
        self._status = None
        self._stop.clear()
        if isinstance(self._cmds, _Helper):
            try:
                self._cmds.warm()  # started now, so the first card does not wait for it
            except Exception:
                log.exception("card helper did not start; the first read tries again")
        self._thread = threading.Thread(target=self._watch, name="sscard-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        ctx = self._mon_ctx
        if ctx is not None:
            try:
                _scard().SCardCancel(ctx)
            except Exception:  # waking the thread is best effort; it also times out
                pass
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None
        self._emit = None
        self._cmds.close()

    def _send(self, event: object) -> None:
        if self._emit is not None:
            try:
                self._emit(event)
            except Exception:  # a faulty consumer must not kill the watcher
                log.exception("emit failed")

    def _set_status(self, status: DeviceStatus, reader: str) -> None:
        if status is not self._status:
            self._status = status
            log.info("card reader %s: %s", reader or "-", status.value)
            self._send(ReaderStatusChanged(reader, status))

    def _forget(self, readers) -> None:
        for r in list(readers):
            if self._present.pop(r, False):
                self._cmds.gone(wait=False)
                self._send(CardRemoved(r))

    def _watch(self) -> None:
        sc = _scard()
        ctx = None
        states: dict[str, int] = {}
        label = self.reader_name or ""
        while not self._stop.is_set():
            try:
                if ctx is None:
                    hr, c = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
                    if hr != sc.SCARD_S_SUCCESS:
                        self._set_status(DeviceStatus.OFFLINE, label)
                        self._stop.wait(max(self.poll_interval, 0.5))
                        continue
                    ctx, self._mon_ctx, states = c, c, {}
                hr, readers = sc.SCardListReaders(ctx, [])
                if hr == sc.SCARD_E_NO_READERS_AVAILABLE:
                    readers = []
                elif hr != sc.SCARD_S_SUCCESS:
                    raise ConnectionError(_hr_name(hr))
                watched = [r for r in readers if self.reader_name in (None, r)]
                self._forget(r for r in list(self._present) if r not in watched)
                if not watched:
                    self._set_status(DeviceStatus.NO_DEVICE, label)
                    self._stop.wait(self.poll_interval)
                    continue
                self._set_status(DeviceStatus.ONLINE, self.reader_name or watched[0])
                query = [(r, states.get(r, sc.SCARD_STATE_UNAWARE)) for r in watched]
                hr, result = sc.SCardGetStatusChange(ctx, int(self.poll_interval * 1000), query)
                if hr in (sc.SCARD_E_TIMEOUT, sc.SCARD_E_CANCELLED):
                    continue
                if hr != sc.SCARD_S_SUCCESS:
                    raise ConnectionError(_hr_name(hr))
                inserted = False
                for reader, event, _atr in result:
                    states[reader] = event & ~sc.SCARD_STATE_CHANGED
                    present = bool(event & sc.SCARD_STATE_PRESENT) and not event & sc.SCARD_STATE_MUTE
                    if present != self._present.get(reader, False):
                        self._present[reader] = present
                        if present:
                            inserted = True
                        else:
                            self._cmds.gone(wait=False)
                        self._send(CardInserted(reader) if present else CardRemoved(reader))
                if inserted and self.prefetch:
                    self._cmds.prefetch()
            except Exception as e:  # pcscd gone or context broken: start over with a new context
                log.info("PC/SC watch lost its context (%s); re-establishing", e)
                self._forget(list(self._present))
                self._set_status(DeviceStatus.OFFLINE, label)
                if ctx is not None:
                    try:
                        sc.SCardReleaseContext(ctx)
                    except Exception:
                        pass
                ctx, self._mon_ctx = None, None
                self._stop.wait(self.poll_interval)
        if ctx is not None:
            try:
                sc.SCardReleaseContext(ctx)
            except Exception:
                pass
        self._mon_ctx = None

    def _announce(self, reader: Changed) -> None:
        """Another card answered where the read one was, unseen by pcscd (swapped within one presence
        poll): tell the session the read card left and a card arrived, so it ends the old session and
        reads the card that is there."""
        if reader and self._thread is not None:
            log.info("card reader %s: another card answers; reporting removal and insertion", reader)
            self._send(CardRemoved(reader))
            self._send(CardInserted(reader))

    # ---- status (never raises)
    def status(self) -> DeviceStatus:
        if self._thread is not None:
            return self._status or DeviceStatus.OFFLINE
        try:
            with self._context() as (sc, ctx):
                _pick_reader(sc, ctx, self.reader_name)
            return DeviceStatus.ONLINE
        except _Fail as f:
            return DeviceStatus.OFFLINE if f.detail == "pcscd" else DeviceStatus.NO_DEVICE
        except Exception:
            return DeviceStatus.HARDWARE_ERROR

    def media(self) -> MediaStatus:
        if self._thread is not None:
            if self._status is not DeviceStatus.ONLINE:
                return MediaStatus.UNKNOWN
            return MediaStatus.PRESENT if any(self._present.values()) else MediaStatus.ABSENT
        try:
            with self._context() as (sc, ctx):
                _reader, present = _pick_reader(sc, ctx, self.reader_name)
            return MediaStatus.PRESENT if present else MediaStatus.ABSENT
        except Exception:
            return MediaStatus.UNKNOWN

    # ---- commands (never raise)
    def read(self, timeout: float = 5.0) -> CardReadOk | CardReadFailed:
        try:
            result, changed = self._cmds.read(timeout)
        except Exception as e:
            log.exception("card read failed")
            return CardReadFailed(CardFault.UNREADABLE, type(e).__name__)
        self._announce(changed)
        return result

    def verify_pin(self, pin: str, timeout: float = 5.0) -> PinResult:
        try:
            result, changed = self._cmds.verify(pin, timeout)
        except Exception:
            log.exception("PIN verify failed")
            return PinResult(PinOutcome.FAILED, fault=CardFault.UNREADABLE)
        self._announce(changed)
        return result

    # ---- internals
    class _Ctx:
        def __init__(self):
            self.sc = _scard()
            self.ctx = None

        def __enter__(self):
            hr, ctx = self.sc.SCardEstablishContext(self.sc.SCARD_SCOPE_USER)
            if hr != self.sc.SCARD_S_SUCCESS:
                raise _Fail(CardFault.NO_READER, "pcscd")
            self.ctx = ctx
            return self.sc, ctx

        def __exit__(self, *exc):
            self.sc.SCardReleaseContext(self.ctx)

    def _context(self):
        return self._Ctx()


def pin_result(sw: int) -> PinResult:
    """The card's answer to VERIFY as a PinResult (tries as the card counts them)."""
    if sw == SW_OK:
        return PinResult(PinOutcome.OK)
    if sw & 0xFFF0 == 0x63C0:
        left = sw & 0x0F
        return PinResult(PinOutcome.WRONG if left else PinOutcome.BLOCKED, tries_left=left)
    if sw == 0x6983:
        return PinResult(PinOutcome.BLOCKED, tries_left=0)
    if sw == 0x6982:
        return PinResult(PinOutcome.FAILED, fault=CardFault.NEEDS_SAM)
    return PinResult(PinOutcome.FAILED, fault=CardFault.UNREADABLE)
