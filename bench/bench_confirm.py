"""Confirm → 已受理: from the resident's 确认提交 to the answer the screen shows (FilingSaved), through the real
runtime, the real outbox on disk (WAL, synchronous=FULL, AES-GCM) and the real sync worker, against the reference
backend over mutual TLS on loopback — with the backend up (the backend's own number) and down (the local one).

The screen change itself is one more frame (bench/bench_form.py measures frames). Goal: ≤ 500 ms up, ≤ 300 ms
down (the promise offline is local durability).

    python bench/bench_confirm.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import queue
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import summary, table  # noqa: E402

from api.enums import Credential  # noqa: E402
from backend.server import start_server  # noqa: E402
from kiosk import session as S  # noqa: E402
from kiosk.backend_client import BackendClient  # noqa: E402
from kiosk.outbox import Outbox, SyncWorker  # noqa: E402
from kiosk.runtime import Runtime, Site  # noqa: E402
from sim.fakes import FakeCardReader, FakePrinter  # noqa: E402

PERSON = S.Person("王秀兰", "370102195203140527", Credential.SSCARD_PIN)  # fictional demo persona
ANSWERS = (
    ("name", "王秀兰"), ("id_number", "370102195203140527"), ("phone", "13800001234"), ("village", "v01"),
    ("employment_type", "employed"), ("occupation", "planting"), ("start_date", "2026-11-02"),
)


def _confirm(rt: Runtime, events: queue.SimpleQueue, n: int) -> tuple[float, object]:
    eff = S.SubmitFiling(
        sid=1, service="employment_registration", local_number=f"L20261201-B{n:05d}", key=f"bench-confirm-{n:06d}",
        person=PERSON, answers=ANSWERS, online_only=False, created_at=dt.datetime.now().astimezone(),
    )
    t0 = time.perf_counter()
    rt._run(eff)
    got = events.get(timeout=30)
    return time.perf_counter() - t0, got.value


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-confirm-"))
    server = start_server(tmp / "backend", demo=True)
    make = lambda: BackendClient(server.url, server.ca_path, server.client_cert, server.client_key)  # noqa: E731
    outbox = Outbox(tmp / "kiosk" / "outbox.sqlite3", tmp / "kiosk" / "outbox.key")
    sync = SyncWorker(outbox, make)
    rt = Runtime(card_reader=FakeCardReader(), printer=FakePrinter(), backend=make(),
                 site=Site("T-BENCH", "370102001", "示范站"), outbox=outbox, sync=sync)
    events: queue.SimpleQueue = queue.SimpleQueue()
    rt.post = events.put  # the screen's side: what the main thread would pump
    sync.start()
    results: dict[str, dict] = {}
    try:
        for label, mode in (("backend up", "online"), ("backend down", "offline")):
            server.set_mode(mode)
            times, kinds = [], set()
            for i in range(args.rounds):
                took, value = _confirm(rt, events, len(results) * 1000 + i)
                times.append(took)
                kinds.add(type(value).__name__ + ("(queued)" if getattr(value, "queued", False) else ""))
            results[label] = {**summary(times, 1000), "answers": sorted(kinds)}
        server.set_mode("online")
    finally:
        sync.stop()
        rt.stop()
        outbox.close()
        server.stop()
    goal = {"backend up": "≤ 500 ms", "backend down": "≤ 300 ms"}
    rows = [[k, f"{v['median']:.0f}", f"{v['p90']:.0f}", f"{v['max']:.0f}", goal[k], ", ".join(v["answers"])]
            for k, v in results.items()]
    print(table("Confirm → the answer on screen (runtime + outbox + sync worker + backend, mTLS)", ["confirm → answer", "median ms", "p90 ms", "max ms", "goal", "answer"], rows))
    print(json.dumps({k: {m: round(v[m], 1) for m in ("median", "p90", "max")} for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
