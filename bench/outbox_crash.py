"""Crash harness of the outbox: SIGKILL the kiosk at random points of confirm, submit and sync (and the backend
too, some of the time) while the network is up, down or failing; then restart everything, drain, and count.

A child process plays the kiosk: it confirms filings through the real Outbox and tells the parent "told
<local number>" over a pipe only after put_filing returned (the moment the resident sees 已受理 / 待上传),
while its SyncWorker sends over mutual TLS. The backend is a process of its own (`python -m backend`, or the
filing stub of the tests when this backend has no POST /v1/filings), behind a TCP proxy that passes, refuses,
blackholes or cuts the answer after the request went through.

    PYTHONPATH=. .venv/bin/python bench/outbox_crash.py --kills 500 [--backend auto|real|stub] [--seed S]

Last line: one JSON object: kills, backend_kills, told_accepted, in_backend, lost, duplicated, ... Bounded:
--max-seconds stops the kill loop (default 1800), the drain has its own time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import table  # noqa: E402
from bench._outbox import (  # noqa: E402
    MODES,
    ROOT,
    BackendProc,
    FilingMaker,
    Proxy,
    backend_command,
    free_port,
    held_by_backend,
)

# --- the kiosk child --------------------------------------------------------------------------------------


def child(args: argparse.Namespace) -> int:
    from kiosk.backend_client import BackendClient
    from kiosk.outbox import Outbox, SyncWorker, sync_once

    out = sys.stdout
    box = Outbox(Path(args.outbox) / "outbox.sqlite3", Path(args.outbox) / "outbox.key")

    def client() -> BackendClient:
        return BackendClient(args.url, args.ca, args.cert, args.key, retries=0, connect_timeout=1.0,
                             read_timeout=2.0, deadline=4.0)

    services = json.loads(Path(args.services).read_text(encoding="utf-8"))
    maker = FilingMaker(services, attach_size=20 * 1024)
    if args.drain:
        c = client()
        end = time.monotonic() + args.drain_seconds
        while time.monotonic() < end:
            t = time.monotonic()
            report = sync_once(box, c)
            print(f"drain pass: sent {report.sent} remaining {report.remaining} unreachable {report.unreachable}"
                  f" in {time.monotonic() - t:.1f} s {report.errors[:3]}", file=sys.stderr, flush=True)
            if report.remaining == 0:
                return 0
            if not report.unreachable and report.remaining == report.failed:
                print(json.dumps({"failed": report.failed, "errors": report.errors[:5]}), file=sys.stderr)
                return 1
            time.sleep(0.2)  # the backend is coming back: ask again shortly
        return 75
    def on_result(item, answer, error) -> None:
        if answer is not None and answer.replayed:  # the backend had it already: an answer was lost before
            out.write(f"replayed {item.local_number}\n")
            out.flush()

    worker = SyncWorker(box, client, on_result=on_result, base=0.05, cap=1.0).start()
    rnd = random.Random(args.seed)
    out.write("ready\n")
    out.flush()
    i = args.seed * 100_000
    while True:
        i += 1
        body = maker.make(i, attach=rnd.random() < args.attach_fraction)
        item = box.put_filing(**body)
        out.write(f"told {item.local_number}\n")  # only now may the resident be told
        out.flush()
        worker.kick()
        time.sleep(rnd.uniform(0, args.pause))


# --- the parent -------------------------------------------------------------------------------------------


class Kiosk:
    def __init__(self, argv: list[str], log) -> None:
        self.argv = argv
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.told: set[str] = set()
        self.replayed: set[str] = set()
        self._ready = threading.Event()

    def start(self) -> None:
        self._ready.clear()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL,
                                     cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("told "):
                self.told.add(line.split()[1])
            elif line.startswith("replayed "):
                self.replayed.add(line.split()[1])
            elif line.strip() == "ready":
                self._ready.set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=500)
    ap.add_argument("--backend", choices=["auto", "real", "stub"], default="auto")
    ap.add_argument("--backend-cmd", default=None,
                    help="command template with {python} {data} {port}; overrides --backend")
    ap.add_argument("--backend-root", type=Path, default=ROOT, help="source tree the backend runs from")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=1800)
    ap.add_argument("--attach-fraction", type=float, default=0.1)
    ap.add_argument("--pause", type=float, default=0.05, help="the kiosk's longest pause between filings (s)")
    ap.add_argument("--out", type=Path, default=None, help="keep the data and logs here")
    # child mode
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--drain", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--drain-seconds", type=float, default=180, help=argparse.SUPPRESS)
    for a in ("--outbox", "--url", "--ca", "--cert", "--key", "--services"):
        ap.add_argument(a, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    rnd = random.Random(args.seed)
    work = args.out or Path(tempfile.mkdtemp(prefix="outbox-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    cmd = args.backend_cmd or backend_command(args.backend, args.backend_root)
    backend = BackendProc(cmd, work / "backend", free_port(), args.backend_root)
    backend.start()
    proxy = Proxy(backend.port).start()
    services = work / "services.json"
    services.write_text(json.dumps(_catalog(backend)), encoding="utf-8")
    kiosk_log = open(work / "kiosk.log", "ab")
    base = [sys.executable, str(Path(__file__).resolve()), "--child", "--outbox", str(work / "kiosk"),
            "--url", f"https://127.0.0.1:{proxy.port}", "--ca", backend.ca, "--cert", backend.cert,
            "--key", backend.key, "--services", str(services), "--attach-fraction", str(args.attach_fraction),
            "--pause", str(args.pause)]
    kills = backend_kills = 0
    modes: dict[str, int] = dict.fromkeys(MODES, 0)
    started = time.monotonic()
    k = Kiosk(base + ["--seed", "0"], kiosk_log)
    try:
        while kills < args.kills and time.monotonic() - started < args.max_seconds:
            k.argv = base + ["--seed", str(kills + 1)]
            k.start()
            k.wait_ready(60)
            time.sleep(rnd.uniform(0.0, 0.8))  # a random point of confirm / submit / sync
            k.kill()
            kills += 1
            r = rnd.random()
            if r < 0.15 and backend.up:
                backend.kill()  # mid-request, some of the time
                backend_kills += 1
            elif not backend.up and r < 0.6:
                backend.start()
            if rnd.random() < 0.3:
                proxy.mode = rnd.choice(MODES)
                modes[proxy.mode] += 1
        # everything back, then drain
        proxy.mode = "pass"
        if not backend.up:
            backend.start()
        drain_started = time.monotonic()
        k.argv = base + ["--drain"]
        k.start()
        drained = k.proc.wait(240) if k.proc else 1
        drain_s = time.monotonic() - drain_started
    finally:
        k.kill()
        backend.stop()
        proxy.stop()
        kiosk_log.close()
    held = held_by_backend(work / "backend")
    told = k.told
    lost = sorted(told - set(held))
    duplicated = sorted(n for n, c in held.items() if c > 1)
    elapsed = time.monotonic() - started
    result = {
        "kills": kills, "backend_kills": backend_kills, "told_accepted": len(told), "in_backend": len(held),
        "lost": len(lost), "duplicated": len(duplicated), "drain_exit": drained, "drain_s": round(drain_s, 1),
        "replayed_answers": len(k.replayed), "answers_cut": proxy.cut, "proxy_modes": modes, "seconds": round(elapsed, 1), "backend": "stub" if "filing_stub" in cmd else "real",
    }
    print(table("outbox crash harness", ["figure", "value", "goal"], [
        ["kiosk SIGKILLs", str(kills), "≥ 500"],
        ["backend SIGKILLs", str(backend_kills), "some"],
        ["told 已受理 / 待上传", str(len(told)), "-"],
        ["in the backend (distinct)", str(len(held)), "≥ told"],
        ["lost (told, not in backend)", str(len(lost)), "0"],
        ["duplicated (filed twice)", str(len(duplicated)), "0"],
        ["answers cut by the proxy / replayed by the backend", f"{proxy.cut} / {len(k.replayed)}", "-"],
        ["drain after the last kill", f"{drain_s:.1f} s (exit {drained})", "exit 0"],
    ]))
    if lost:
        print("lost:", lost[:10])
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0 if not lost and not duplicated and drained == 0 else 1


def _catalog(backend: BackendProc) -> list[dict]:
    from kiosk.backend_client import BackendClient, BackendFailure

    with BackendClient(f"https://127.0.0.1:{backend.port}", backend.ca, backend.cert, backend.key) as c:
        got = c.services()
    if isinstance(got, BackendFailure) or got[0] is None:
        return []
    return got[0].services


if __name__ == "__main__":
    sys.exit(main())
