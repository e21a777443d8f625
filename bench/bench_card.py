"""Social-security card timings through the real pcscd + vpcd stack, printed as a table.

    PYTHONPATH=. python bench/bench_card.py [--runs 20] [--port 35964]

- inserted → present: the virtual card connects to vpcd until the driver's watcher emits CardInserted
  (pcscd's own presence polling, reference ~300 ms).
- present → data: CardInserted until read() returns CardReadOk with the name (goal ≤ 100 ms).
- removed → CardRemoved, and the time per APDU with and without TCP_QUICKACK on the twin's socket.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.base import CardInserted, CardReadOk, CardRemoved  # noqa: E402
from devices.sscard import PcscCardReader  # noqa: E402
from sim.pcscd import ensure_pcscd, stop_pcscd  # noqa: E402
from sim.personas import persona  # noqa: E402
from sim.vcard import SSSE_AID, VirtualCard  # noqa: E402

READERS = {35963: "Virtual PCD 00 00", 35964: "Virtual PCD 00 01"}


def _wait(q: queue.Queue, kind, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        ev, t = q.get(timeout=max(0.001, deadline - time.monotonic()))
        if isinstance(ev, kind):
            return t


def card_cycle(runs: int, port: int, quickack: bool = True) -> dict[str, list[float]]:
    reader = READERS[port]
    q: queue.Queue = queue.Queue()
    rd = PcscCardReader(reader, poll_interval=0.2)
    rd.start(lambda ev: q.put((ev, time.monotonic())))
    out: dict[str, list[float]] = {"present": [], "read": [], "removed": [], "apdus": []}
    try:
        for i in range(runs):
            card = VirtualCard(persona("elder" if i % 2 else "rare_name"), port=port, quickack=quickack)
            t0 = time.monotonic()
            card.insert()
            t1 = _wait(q, CardInserted)
            result = rd.read()
            t2 = time.monotonic()
            assert isinstance(result, CardReadOk), result
            out["present"].append(t1 - t0)
            out["read"].append(t2 - t1)
            out["apdus"].append(card.apdu_count)
            t3 = time.monotonic()
            card.remove()
            out["removed"].append(_wait(q, CardRemoved) - t3)
    finally:
        rd.stop()
    return out


def per_apdu(port: int, quickack: bool, n: int = 50) -> float:
    from smartcard import scard

    card = VirtualCard(persona("elder"), port=port, quickack=quickack)
    card.insert()
    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            hr, h, proto = scard.SCardConnect(
                ctx, READERS[port], scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
            )
            if hr == scard.SCARD_S_SUCCESS:
                break
            time.sleep(0.02)
        apdu = list(bytes([0x00, 0xA4, 0x04, 0x00, len(SSSE_AID)]) + SSSE_AID)
        scard.SCardTransmit(h, proto, apdu)
        t = time.monotonic()
        for _ in range(n):
            scard.SCardTransmit(h, proto, apdu)
        took = (time.monotonic() - t) / n
        scard.SCardDisconnect(h, scard.SCARD_LEAVE_CARD)
        return took
    finally:
        scard.SCardReleaseContext(ctx)
        card.remove()
        time.sleep(0.6)  # let pcscd see the slot empty before the next card


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return f"{statistics.median(xs) * 1000:8.1f} {p90 * 1000:8.1f} {xs[-1] * 1000:8.1f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--port", type=int, default=35964, choices=sorted(READERS))
    args = ap.parse_args()
    proc = ensure_pcscd()
    try:
        fast = card_cycle(args.runs, args.port)
        slow = card_cycle(max(3, args.runs // 4), args.port, quickack=False)
        apdu_on = per_apdu(args.port, True)
        apdu_off = per_apdu(args.port, False)
    finally:
        stop_pcscd(proc)
    n_apdus = statistics.median(fast["apdus"])
    print(f"social-security card through pcscd + vpcd ({args.runs} runs; {n_apdus:.0f} APDUs per read)")
    print(f"{'figure':44} {'median':>8} {'p90':>8} {'max':>8}   reference (ms)")
    rows = [
        ("inserted → present (CardInserted)", ms(fast["present"]), "~300 pcscd polling"),
        ("present → data read (CardReadOk)", ms(fast["read"]), "goal ≤ 100 (present → name)"),
        ("removed → CardRemoved", ms(fast["removed"]), "~300 pcscd polling"),
        (f"present → data, no TCP_QUICKACK ({len(slow['read'])} runs)", ms(slow["read"]), "the twin, not the kiosk"),
    ]
    for name, figs, ref in rows:
        print(f"{name:44} {figs}   {ref}")
    print(f"{'per APDU, TCP_QUICKACK on':44} {apdu_on * 1000:8.2f} {'':8} {'':8}   0.4 (measured on the reference machine)")
    print(f"{'per APDU, TCP_QUICKACK off':44} {apdu_off * 1000:8.2f} {'':8} {'':8}   49 (measured on the reference machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
