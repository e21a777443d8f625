"""Outage: queue N filings (default 10,000; 10 % with a 300 KB attachment) while the backend is down, then
start it and drain over mutual TLS. Figures: put_filing time with the backend down (confirm → 已受理, the
local durability promise), the drain rate (all, and over the filings without attachments), the kiosk
process's RSS during the drain, and put_filing time while the drain runs (the UI still answers).

The kiosk is a child process (its RSS is its own); the backend a process of its own (`python -m backend`, or
the filing stub of the tests when this backend has no POST /v1/filings).

    PYTHONPATH=. .venv/bin/python bench/outbox_outage.py [--count 10000] [--attach-fraction 0.1]
        [--backend auto|real|stub] [--backend-root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import summary, table, vmrss_mb  # noqa: E402
from bench._outbox import ROOT, BackendProc, FilingMaker, backend_command, free_port  # noqa: E402

DRAIN_LIMIT = 1800.0


def child(args: argparse.Namespace) -> int:
    from kiosk.backend_client import BackendClient
    from kiosk.outbox import PENDING, Outbox, SyncWorker

    box = Outbox(Path(args.outbox) / "outbox.sqlite3", Path(args.outbox) / "outbox.key")

    def client() -> BackendClient:
        return BackendClient(args.url, args.ca, args.cert, args.key, retries=0, connect_timeout=2, read_timeout=10)

    maker = FilingMaker(json.loads(Path(args.services).read_text(encoding="utf-8")))
    attached: set[str] = set()
    done_at: list[tuple[float, bool]] = []

    def on_result(item, answer, error) -> None:
        done_at.append((time.perf_counter(), item.local_number in attached))

    worker = SyncWorker(box, client, on_result=on_result, parallel=args.parallel).start()
    rnd = random.Random(args.seed)
    rss_start = vmrss_mb()
    puts: list[float] = []
    for i in range(args.count):
        attach = rnd.random() < args.attach_fraction
        body = maker.make(i, attach)
        t = time.perf_counter()
        item = box.put_filing(**body)
        puts.append(time.perf_counter() - t)
        worker.kick()  # as the runtime does after each confirm: the backend is down, it fails fast
        if attach:
            attached.add(item.local_number)
    print(json.dumps({"phase": "queued", "pending": box.counts()[PENDING]}), flush=True)
    sys.stdin.readline()  # "go": the backend is up

    rss_go = vmrss_mb()
    peak = [rss_go]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], vmrss_mb())

    threading.Thread(target=sample, daemon=True).start()
    started = time.perf_counter()
    cpu0 = time.process_time()
    done_at.clear()
    worker.kick()
    # a resident confirming now and then during the drain: the UI side must not wait for the sync
    live: list[float] = []
    end = time.monotonic() + DRAIN_LIMIT
    while box.counts()[PENDING] and time.monotonic() < end:
        body = maker.make(args.count + len(live), False)
        t = time.perf_counter()
        box.put_filing(**body)
        live.append(time.perf_counter() - t)
        worker.kick()
        time.sleep(0.2)
    drained = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    stop.set()
    worker.stop()
    sent = len(done_at)
    # time per item: from the previous completion (the drain start for the first) to its own
    plain_t = attach_t = 0.0
    prev = started
    n_plain = n_attach = 0
    for when, with_attachment in done_at:
        if with_attachment:
            attach_t += when - prev
            n_attach += 1
        else:
            plain_t += when - prev
            n_plain += 1
        prev = when
    print(json.dumps({
        "phase": "drained", "sent": sent, "pending_left": box.counts()[PENDING], "drain_s": drained,
        "rate": sent / drained if drained else 0, "rate_plain": n_plain / plain_t if plain_t else 0,
        "rate_attached": n_attach / attach_t if attach_t else 0, "n_attached": n_attach,
        "put_down": summary(puts, 1000), "put_during_drain": summary(live, 1000),
        "kiosk_cpu_ms_per_filing": 1000 * cpu / max(1, len(done_at)),
        "rss_start": rss_start, "rss_go": rss_go, "rss_peak": peak[0],
    }), flush=True)
    box.close()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--attach-fraction", type=float, default=0.1)
    ap.add_argument("--backend", choices=["auto", "real", "stub"], default="auto")
    ap.add_argument("--backend-cmd", default=None, help="command template with {python} {data} {port}")
    ap.add_argument("--backend-root", type=Path, default=ROOT)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=4, help="requests in flight during the drain")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for a in ("--outbox", "--url", "--ca", "--cert", "--key", "--services"):
        ap.add_argument(a, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    work = args.out or Path(tempfile.mkdtemp(prefix="outbox-outage-"))
    work.mkdir(parents=True, exist_ok=True)
    cmd = args.backend_cmd or backend_command(args.backend, args.backend_root)
    backend = BackendProc(cmd, work / "backend", free_port(), args.backend_root)
    backend.start()  # once: its certificates and its catalog; then down for the outage
    from bench.outbox_crash import _catalog

    services = work / "services.json"
    services.write_text(json.dumps(_catalog(backend)), encoding="utf-8")
    backend.stop()
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", "--outbox", str(work / "kiosk"),
            "--url", f"https://127.0.0.1:{backend.port}", "--ca", backend.ca, "--cert", backend.cert,
            "--key", backend.key, "--services", str(services), "--count", str(args.count),
            "--attach-fraction", str(args.attach_fraction), "--seed", str(args.seed),
            "--parallel", str(args.parallel)]
    log = open(work / "kiosk.log", "ab")
    kiosk = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        queued = json.loads(kiosk.stdout.readline())  # type: ignore[union-attr]
        backend.start()
        kiosk.stdin.write("go\n")  # type: ignore[union-attr]
        kiosk.stdin.flush()  # type: ignore[union-attr]
        line = kiosk.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the kiosk child ended early; see {work / 'kiosk.log'}")
        r = json.loads(line)
        kiosk.wait(60)
    finally:
        if kiosk.poll() is None:
            kiosk.kill()
        backend.stop()
        log.close()
    pd, pl = r["put_down"], r["put_during_drain"]
    print(table(
        f"outbox outage: {queued['pending']} filings queued with the backend down "
        f"({r['n_attached']} with a ~300 KB attachment), then drained ({'stub' if 'filing_stub' in cmd else 'real'} backend)",
        ["figure", "value", "goal"], [
            ["put_filing, backend down (median / p90)", f"{pd['median']:.2f} / {pd['p90']:.2f} ms", "≤ 300 ms (confirm → 已受理)"],
            ["put_filing during the drain (median / p90)",
             f"{pl.get('median', 0):.2f} / {pl.get('p90', 0):.2f} ms", "≤ 300 ms"],
            ["drain rate, all", f"{r['rate']:.0f} filings/s ({r['sent']} in {r['drain_s']:.1f} s)", "-"],
            ["drain rate, filings without attachments", _plain(r, args), "≥ 200 filings/s"],
            ["drain rate, filings with an attachment", _attached(r, args), "-"],
            ["kiosk CPU per filing sent (client side of the drain)", f"{r['kiosk_cpu_ms_per_filing']:.2f} ms", "-"],
            ["kiosk RSS during the drain (peak − at start of drain)",
             f"+{r['rss_peak'] - r['rss_go']:.1f} MB ({r['rss_go']:.0f} → {r['rss_peak']:.0f})", "≤ +30 MB"],
            ["kiosk RSS peak − before queueing", f"+{r['rss_peak'] - r['rss_start']:.1f} MB", "-"],
            ["left in the outbox", str(r["pending_left"]), "0"],
        ]))
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: v for k, v in r.items() if k != "phase"}))
    return 0 if r["pending_left"] == 0 else 1


def _plain(r: dict, args: argparse.Namespace) -> str:
    if args.attach_fraction == 0:
        return f"{r['rate']:.0f} filings/s"
    if args.parallel == 1:  # one at a time: each completion's time is its own
        return f"{r['rate_plain']:.0f} filings/s"
    return "- (run with --attach-fraction 0)"


def _attached(r: dict, args: argparse.Namespace) -> str:
    return f"{r['rate_attached']:.0f} filings/s" if args.parallel == 1 and r["n_attached"] else "-"


if __name__ == "__main__":
    sys.exit(main())
