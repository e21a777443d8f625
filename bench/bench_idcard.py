"""Bench: ID card placed on the reader → IdCardPlaced event, against the wire time of the exchange.

Real serial timing comes from the twin, which paces every byte at the baud rate (8N1: 10 bits a
byte). Goal: event within 1.2 × wire time + one poll interval.

    PYTHONPATH=. python bench/bench_idcard.py [--trials 10]
"""

from __future__ import annotations

import argparse
import queue
import random
import statistics
import time

from devices import sam_frames as sf
from devices.idcard import IdCardPlaced, IdCardRemoved, SerialIdCardReader
from sim.idcard_twin import IdCardTwin


def exchange_bytes() -> int:
    """find + select + read, commands and answers, as the twin sends them."""
    twin = IdCardTwin("elder", pace=False)
    try:
        total = 0
        for cmd in (sf.FIND_CARD, sf.SELECT_CARD, sf.READ_TEXT_PHOTO):
            c = sf.build_command(*cmd)
            total += len(c) + len(twin.answer(c[7:-1]))
        return total
    finally:
        twin.stop()


def placed_latency(trials: int, baud: int, poll: float, noise: bool) -> list[float]:
    out = []
    with IdCardTwin(baudrate=baud, pace=True, noise=noise, seed=5) as twin:
        q: queue.Queue = queue.Queue()
        r = SerialIdCardReader(twin.port, baudrate=baud, poll_interval=poll, timeout=1.0, retries=5)
        r.start(q.put)
        time.sleep(0.5)
        try:
            for i in range(trials):
                time.sleep(random.uniform(0, poll))  # land anywhere in the poll cycle
                t0 = time.perf_counter()
                twin.place("elder" if i % 2 else "hk")
                while not isinstance(q.get(timeout=10), IdCardPlaced):
                    pass
                out.append(time.perf_counter() - t0)
                twin.remove()
                while not isinstance(q.get(timeout=10), IdCardRemoved):
                    pass
        finally:
            r.stop()
    return out


def read_once_latency(trials: int, baud: int) -> list[float]:
    out = []
    with IdCardTwin("elder", baudrate=baud, pace=True) as twin:
        r = SerialIdCardReader(twin.port, baudrate=baud)
        r.sam_status()  # opened and answered: time only the card exchange
        for _ in range(trials):
            t0 = time.perf_counter()
            assert not hasattr(r.read_once(3.0), "fault")
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--poll", type=float, default=0.25)
    args = ap.parse_args()
    nbytes = exchange_bytes()
    wire = nbytes * 10 / args.baud
    goal = 1.2 * wire + args.poll
    print(f"find/select/read exchange: {nbytes} bytes = {wire * 1000:.1f} ms on the wire at {args.baud} baud")
    print(f"goal: placed → event ≤ 1.2 × wire + poll interval = {goal * 1000:.0f} ms\n")
    rows = [
        ("placed → IdCardPlaced (poll)", placed_latency(args.trials, args.baud, args.poll, False), goal),
        ("same, noise mode", placed_latency(args.trials, args.baud, args.poll, True), None),
        ("read_once (CLI path, +SAM status)", read_once_latency(args.trials, args.baud), 1.2 * (wire + 20 * 10 / args.baud)),
    ]
    print(f"{'measure':36} {'n':>3} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} {'wire ms':>8} {'goal ms':>8}")
    for name, xs, g in rows:
        xs = sorted(xs)
        p90 = xs[min(len(xs) - 1, int(0.9 * len(xs)))]
        gs = f"{g * 1000:8.0f}" if g else f"{'-':>8}"
        print(f"{name:36} {len(xs):3d} {statistics.median(xs) * 1000:10.1f} {p90 * 1000:8.1f} "
              f"{xs[-1] * 1000:8.1f} {wire * 1000:8.1f} {gs}")


if __name__ == "__main__":
    main()
