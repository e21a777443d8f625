"""The kiosk app's own figures, measured from outside the app (no hooks in kiosk/), printed as tables.

    PYTHONPATH=. .venv/bin/python bench/bench_app.py [--runs 5] [--sessions 200]
                                                     [--only start,soak,card,soak-real,backend]

Starts its own Xvfb (1280×800). See bench/README.md for what each figure is.

1. start: `kiosk run --config F` (what systemd starts) as a process of its own, from spawn to the READY=1
   it sends on the clock tick after its first frame, on a NOTIFY_SOCKET this script owns; next to a bare
   Kivy window with one Chinese label that reports the same way. Warm; after a "reboot" (the app's and its
   packages' files evicted from the page cache with posix_fadvise DONTNEED); first start after an install
   without `kiosk run --prepare` (the app's caches removed). Idle RSS 3 s after READY; SIGTERM → exit.
   The config needs no hardware and no pcscd: twins on ptys, the reference backend, no card reader.
2. card → name (`card`, needs pcscd + vpcd): a virtual card connects; the first flipped frame whose PIN
   screen shows the holder's masked name. Built in a child of this script (`--child MODE`), watched through
   Window.on_flip and Clock callbacks.
3. RSS over N scripted sessions (card, PIN by touch, menu, pension, print, take the card), in a child of
   this script: on fakes (`soak`), or on the real stack (`soak-real`, needs pcscd).
4. backend (`backend`, demo stack): the kiosk's BackendClient over mutual TLS, in this process.
Figures are printed with their reference; nothing is asserted on time (machines differ).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import rss_parts_mb, summary, table, vmrss_mb  # noqa: E402

READERS = {35963: "Virtual PCD 00 00", 35964: "Virtual PCD 00 01"}
SETTLE = 3.0  # seconds at idle before the "idle RSS" sample: lazy loading is over by then
CARD_KEYS = ("elder", "worker")


# ====================================================================== child: one app process


def _visible(root):
    stack = [root]
    while stack:
        w = stack.pop()
        if getattr(w, "opacity", 1) == 0 or w.width <= 0 or w.height <= 0:
            continue
        yield w
        stack.extend(w.children)


def _drawn(label) -> bool:
    """The label's texture is made for its current text (no texture update pending before the frame)."""
    trig = getattr(label, "_trigger_texture", None)
    return label.texture is not None and not getattr(trig, "is_triggered", False)


def _labels_ready(root) -> bool:
    from kivy.uix.label import Label

    return all(_drawn(w) for w in _visible(root) if isinstance(w, Label) and w.text)


class FakeBackend:
    """Answers like kiosk.backend_client.BackendClient, in memory (for the RSS soak's speed)."""

    def __init__(self) -> None:
        self.receipts = 0

    def health(self) -> bool:
        return True

    def pension(self, ssn: str):
        from datetime import date
        from decimal import Decimal

        from kiosk.backend_client import Payment, PensionStatus

        return PensionStatus(
            insurance_type="城乡居民基本养老保险", status="领取中", contribution_tier="每年500元档",
            years_contributed=15, account_balance=Decimal("7532.40"), receiving=True,
            monthly_amount=Decimal("238.50"),
            payments=tuple(Payment(f"2025-0{m}", Decimal("238.50"), "已发放") for m in (5, 4, 3)),
            certification_status="已认证", certification_due=date(2027, 3, 31),
        )

    def create_receipt(self, **_kw):
        from types import SimpleNamespace

        self.receipts += 1
        rid = f"R-BENCH-{self.receipts:06d}"
        return SimpleNamespace(receipt_id=rid, verify_url=f"https://kiosk.example.invalid/r/{rid}")


def _fake_card():
    from datetime import date

    from devices.base import SSCardData

    # The fictional 'elder' persona (assets/demo/personas.json).
    return SSCardData(
        name="王秀兰", ssn="370102195203140527", card_number="M37010001", card_id="370100D156000005",
        card_type="1", card_version="2.00", init_org="370100000001", issue_date=date(2018, 6, 1),
        expiry_date=date(2028, 6, 1), gender="2", nation=1, birth_place="370102", birth_date=date(1952, 3, 14),
    )


class Child:
    """Runs in the child process; holds strong references to everything Kivy calls back (weak refs)."""

    def __init__(self, args) -> None:
        self.args = args
        self.mode = args.child
        self.res: dict = {"mode": self.mode, "t0": args.t0, "marks": {}, "errors": []}
        self.app = None
        self.runtime = None
        self.idle_at = None
        self.first_flip = None
        self.card = None
        self.fake_reader = None
        self.fake_printer = None
        self._events = []  # keeps Clock events (and thus bound methods) alive

    def mark(self, name: str) -> None:
        self.res["marks"][name] = time.monotonic()

    # -- building
    def build(self) -> None:
        from kiosk import app as kapp

        font = kapp.find_cjk_font()
        kapp.prepare_kivy(size=kapp.SIZES["landscape"], dev=False)
        self.mark("config")
        from kivy.core.window import Window  # imports Kivy and opens the window

        self.mark("window")
        self.runtime = self._runtime()
        self.app = kapp.build_app(self.runtime, font_path=font)
        self._wrap_post()
        self.mark("built")  # kv rules loaded, screens imported, the app object made
        from kivy.clock import Clock

        Window.bind(on_flip=self.on_flip)
        self.app.bind(on_start=lambda *_: self.mark("started"))  # build() done, widget tree in the window
        self._events.append(Clock.schedule_once(self.watchdog, self.args.child_timeout))

    def _runtime(self):
        from kiosk import session as S

        if self.mode == "soak-fake":
            from kiosk.runtime import Runtime, Site
            from sim.fakes import FakeCardReader, FakePrinter

            self.fake_reader, self.fake_printer = FakeCardReader(), FakePrinter()
            return Runtime(
                card_reader=self.fake_reader, printer=self.fake_printer, backend=FakeBackend(),
                site=Site("T-BENCH-0001", "370102001", "示范镇人社服务站"),
                settings=S.Settings(inactivity=600, pin=300, warn=15), voice=None,
            )
        from kiosk import config
        from kiosk.cli import make_runtime

        cfg = config.parse(json.loads(Path(self.args.cfg).read_text()), self.args.cfg)
        return make_runtime(cfg, voice=False)  # what `kiosk run` builds, minus the espeak voice

    def _wrap_post(self) -> None:
        """Timestamp the driver's events on their own thread (the card reader gets runtime.post at start)."""
        from devices.base import CardInserted, CardReadOk
        from kiosk import session as S

        original = self.runtime.post
        self.res["stamps"] = []

        def post(event):
            now = time.monotonic()
            if isinstance(event, CardInserted):
                self.res["stamps"].append(("inserted_event", now))
            elif isinstance(event, S.Result) and isinstance(event.value, CardReadOk):
                self.res["stamps"].append(("read_ok", now))
            original(event)

        self.runtime.post = post
        self.runtime.listeners.append(self._on_state)
        reader = self.runtime.card_reader
        read = reader.read

        def timed_read(*a, **k):
            self.res["stamps"].append(("read_start", time.monotonic()))
            return read(*a, **k)

        reader.read = timed_read  # the runtime looks the method up per call

    def _on_state(self, state) -> None:
        if state.screen.value == "pin" and state.pin == "":
            self.res.setdefault("stamps", []).append(("pin_state", time.monotonic()))

    # -- frames
    def on_flip(self, *_a) -> None:
        now = time.monotonic()
        if self.first_flip is None:
            self.first_flip = now
            self.res["marks"]["first_flip"] = now
        if self.idle_at is None and self.app.root is not None:
            view = self.app.view
            if (view is None or view.screen == "idle") and _labels_ready(self.app.root):
                self.idle_at = now
                self.res["marks"]["idle_frame"] = now
                self.after_idle()
        if self.mode == "card":
            self.card_on_flip(now)

    def after_idle(self) -> None:
        from kivy.clock import Clock

        if self.mode == "card":
            self.res["rss_idle_mb"] = vmrss_mb()
            self.card_runs = []
            self.card_state = "settle"
            self.card_t = time.monotonic()
            self._events.append(Clock.schedule_interval(self.card_poll, 0))
        else:
            self._events.append(Clock.schedule_once(self.start_soak, SETTLE))

    def watchdog(self, _dt) -> None:
        self.res["errors"].append(f"child timed out after {self.args.child_timeout} s")
        self.stop()

    def stop(self) -> None:
        from kivy.app import App

        app = App.get_running_app()
        if app is not None:
            app.stop()

    # -- 2. card present → masked name on screen (real driver, pcscd + vpcd)
    def _name_shown(self) -> bool:
        from kivy.uix.label import Label

        from api.privacy import mask_name

        view = self.app.view
        if view is None or view.screen != "pin" or self.card is None:
            return False
        masked = mask_name(self.card_name)
        return any(
            isinstance(w, Label) and masked in w.text and _drawn(w) for w in _visible(self.app.root)
        )

    def card_on_flip(self, now: float) -> None:
        if getattr(self, "card_state", None) == "wait_name" and self._name_shown():
            self.card_run["shown"] = now
            self.card_state = "shown"

    def card_poll(self, _dt):
        from sim.personas import persona
        from sim.vcard import VirtualCard

        now = time.monotonic()
        st = self.card_state
        if st == "settle" and now - self.card_t > 1.5:  # the watcher is polling pcscd by now
            st = "insert"
        if st == "insert":
            if len(self.card_runs) >= self.args.card_runs:
                self.stop()
                return False
            p = persona(CARD_KEYS[len(self.card_runs) % len(CARD_KEYS)])
            self.card_name = p["name"]
            self.card = VirtualCard(p, port=self.args.port)
            self.res["stamps"] = []
            self.card_run = {"insert": time.monotonic()}
            self.card.insert()
            self.card_t, st = now, "wait_name"
        elif st == "wait_name" and now - self.card_t > 10:
            self.res["errors"].append(f"run {len(self.card_runs)}: name not shown within 10 s")
            self.stop()
            return False
        elif st == "shown":
            for name, t in self.res["stamps"]:
                self.card_run.setdefault(name, t)  # the first of each
            self.card_runs.append(self.card_run)
            self.res["card_runs"] = self.card_runs
            self.card.remove()
            self.card_t, st = now, "wait_idle"
        elif st == "wait_idle":
            if self.app.view.screen == "idle" and now - self.card_t > 0.8:  # pcscd sees the slot empty
                st = "insert"
            elif now - self.card_t > 10:
                self.res["errors"].append("did not return to idle after the card was removed")
                self.stop()
                return False
        self.card_state = st
        return None  # None, not False: False would unschedule this interval

    # -- 3. RSS over scripted sessions
    def start_soak(self, _dt) -> None:
        self.res["rss_idle_mb"] = vmrss_mb()
        self.res["rss_idle_parts"] = rss_parts_mb()
        from sim.director import Director  # kivy.tests.common imports pytest: harness memory

        self.res["rss_harness_mb"] = vmrss_mb() - self.res["rss_idle_mb"]
        if self.args.tracemalloc:
            import tracemalloc

            tracemalloc.start(1)
        self.res["rss_sessions_mb"] = []
        self.res["session_s"] = []
        self.director = Director(self.app, None, Path(self.args.out) / "director", f"soak-{self.mode}")
        self.director.run(self.soak_journey, self.soak_done)

    def _insert(self) -> None:
        if self.mode == "soak-fake":
            self.fake_reader.insert(_fake_card(), pin="123456")
        else:
            from sim.personas import persona
            from sim.vcard import VirtualCard

            self.card = VirtualCard(persona("elder"), port=self.args.port)
            self.card.insert()

    def _remove(self) -> None:
        if self.mode == "soak-fake":
            self.fake_reader.remove()
            self.fake_printer.printed.clear()  # the fake's own list would count as growth
        else:
            self.card.remove()
            self.card = None

    def soak_journey(self, d):
        from kiosk.i18n import tr

        take_card = tr("zh_CN", "take_card.title")
        for _ in range(self.args.sessions):
            t = time.monotonic()
            yield d.until_screen("idle")
            self._insert()
            yield d.until_screen("pin", timeout=15)
            for ch in "123456":
                yield d.tap(ch)
            yield d.until_screen("menu", timeout=15)
            yield d.tap(tr("zh_CN", "service.pension_query"))
            yield d.until_screen("pension", timeout=15)
            yield d.tap(tr("zh_CN", "pension.print"))
            yield d.until_screen("message", take_card, timeout=20)
            self._remove()
            yield d.until_screen("idle")
            yield d.frames(2)
            if self.mode == "soak-real":
                yield d.until(self._elapsed(0.6), "pcscd sees the slot empty")
            self.res["session_s"].append(time.monotonic() - t)
            self.res["rss_sessions_mb"].append(vmrss_mb())

    @staticmethod
    def _elapsed(secs: float):
        t = time.monotonic()
        return lambda: time.monotonic() - t > secs

    def soak_done(self, director) -> None:
        import ctypes
        import gc

        self.res["rss_end_parts"] = rss_parts_mb()
        if self.args.tracemalloc:
            import tracemalloc

            snap = tracemalloc.take_snapshot()
            self.res["traced_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
            self.res["traced_top"] = [
                [str(st.traceback[0]), st.size / 2**20] for st in snap.statistics("lineno")[:8]
            ]
            tracemalloc.stop()
        gc.collect()
        self.res["rss_after_gc_mb"] = vmrss_mb()
        # glibc keeps freed heap pages; trimming shows how much of the RSS is held rather than used
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        self.res["rss_after_trim_mb"] = vmrss_mb()
        self.res["errors"] += director.errors
        self.stop()

    # -- run
    def run(self) -> None:
        try:
            self.build()
            self.mark("run")
            self.app.run()
        except BaseException as e:  # report, then still write the result file
            self.res["errors"].append(f"{type(e).__name__}: {e}")
        finally:
            Path(self.args.result).write_text(json.dumps(self.res))


# ====================================================================== 1. starts of `kiosk run`

# The reference: a bare Kivy window (the kiosk's window settings) with one Chinese label, telling the bench
# it is up the same way the kiosk does (READY=1 on the tick after the first flipped frame).
BARE = """
import sys
from kiosk.app import prepare_kivy, ready_after_first_frame
from kiosk.sdnotify import notify
prepare_kivy(size=None, dev=False)
from kivy.app import App
from kivy.clock import Clock
from kivy.core.text import DEFAULT_FONT, LabelBase
from kivy.core.window import Window
from kivy.uix.label import Label
LabelBase.register(DEFAULT_FONT, sys.argv[1])
class Bare(App):
    def build(self):
        return Label(text="请插入社保卡", font_size=64)
    def on_start(self):
        ready_after_first_frame(Window, Clock.schedule_once, notify)
Bare().run()
"""
SCREEN = (1280, 800)  # Xvfb's screen: `kiosk run` is full screen, so this is its window too


class xvfb:  # noqa: N801 (used like a function: `with xvfb(size) as display`)
    """An Xvfb of the given screen size on a free display number; yields the DISPLAY value."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.proc = None

    def __enter__(self) -> str:
        exe = shutil.which("Xvfb")
        if exe is None:
            raise SystemExit("Xvfb is needed — apt-get install xvfb")
        n = next(n for n in range(150, 250)
                 if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists())
        self.proc = subprocess.Popen([exe, f":{n}", "-screen", "0", f"{self.size[0]}x{self.size[1]}x24",
                                      "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{n}").exists():  # Xvfb has no readiness signal but its socket
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("Xvfb did not start")
            time.sleep(0.05)
        return f":{n}"

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def evict(paths) -> int:
    """posix_fadvise(DONTNEED) on every file: their clean pages leave the page cache, as after a reboot
    (pages other processes map stay; the bench evicts the same set before both programs)."""
    n = 0
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            n += 1
        finally:
            os.close(fd)
    return n


class Starts:
    """`kiosk run --config F` (what systemd starts) against the bare window, each as a process of its own.

    The config points the real drivers at twins that need no hardware: the reference backend over mutual
    TLS, the printer, ID-card and scanner twins on ptys. No pcscd is started: the children get a
    PCSCLITE_CSOCK_NAME that nothing listens on, so the card reader is simply absent (as when pcscd is
    down; the idle screen does not change for it).
    """

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.out = bench.out / "starts"
        self.out.mkdir(exist_ok=True)
        self.cache = bench.cache  # XDG_CACHE_HOME of the children: font faces and escpos capabilities
        self.prepared = self.out / "cache-after-install"
        self.sock_path = self.out / "notify.sock"
        self.sock = None
        self.parts: list = []
        self.n = 0
        self.maps: set[str] = set()

    def __enter__(self):
        import socket

        from backend.server import start_server
        from kiosk.app import find_cjk_font
        from sim.idcard_twin import IdCardTwin
        from sim.printer_twin import PrinterTwin
        from sim.scanner_twin import ScannerTwin

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock_path.unlink(missing_ok=True)
        self.sock.bind(str(self.sock_path))
        server = start_server(self.out / "backend", demo=True)
        self.parts.append(server.stop)
        printer = PrinterTwin(self.out / "receipts")
        self.parts.append(printer.close)
        idcard = IdCardTwin().start()
        self.parts.append(idcard.stop)
        scanner = ScannerTwin()
        self.parts.append(scanner.close)
        self.config = self.out / "kiosk.toml"
        self.config.write_text(
            "[terminal]\nid = \"T-DEMO-0001\"\nsite_id = \"370102001\"\nsite_name = \"示范镇人社服务站\"\n\n"
            f"[backend]\nurl = \"{server.url}\"\nca = \"{server.ca_path}\"\n"
            f"client_cert = \"{server.client_cert}\"\nclient_key = \"{server.client_key}\"\n\n"
            f"[devices]\nprinter_port = \"{printer.port}\"\nidcard_port = \"{idcard.port}\"\n"
            f"scanner_port = \"{scanner.port}\"\n",
            encoding="utf-8",
        )
        self.env = {
            **self.bench.env,
            "KIVY_HOME": str(self.out / "kivy"),
            "SDL_VIDEODRIVER": "x11",
            "PYTHONUNBUFFERED": "1",
            "PCSCLITE_CSOCK_NAME": str(self.out / "no-pcscd.comm"),
            "NOTIFY_SOCKET": str(self.sock_path),
        }
        # the bare window gets the face the kiosk uses, resolved once here (its cache is the bench's own)
        self.font = find_cjk_font()
        exe = Path(sys.executable).with_name("kiosk")
        self.kiosk_cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kiosk"]
        self.kiosk_cmd += ["--log-file", str(self.out / "kiosk.log"), "run", "--config", str(self.config)]
        # the install step (systemd/README): the caches a first start would otherwise make
        t = time.monotonic()
        p = subprocess.run([*self.kiosk_cmd, "--prepare"], env=self.env, cwd=ROOT, timeout=600,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        note = "" if p.returncode == 0 else f" — failed (exit {p.returncode}): an older checkout without it?"
        print(f"install step (kiosk run --prepare): {time.monotonic() - t:.1f} s{note}", file=sys.stderr)
        bare = self.out / "bare_window.py"
        bare.write_text(BARE, encoding="utf-8")
        self.bare_cmd = [sys.executable, str(bare), self.font]
        return self

    def __exit__(self, *exc) -> None:
        for stop in reversed(self.parts):
            try:
                stop()
            except Exception as e:
                print(f"  stopping a twin: {e}", file=sys.stderr)
        self.sock.close()

    # -- one start
    def start(self, which: str, *, settle: float = 0.0, timeout: float = 60) -> dict:
        """Spawn, wait for READY=1 on our notify socket, optionally settle and sample RSS, then stop."""
        self.n += 1
        log = self.out / f"{self.n:03d}-{which}.log"
        cmd = self.kiosk_cmd if which == "kiosk" else self.bare_cmd
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(256)  # a late WATCHDOG=1 from the previous child
        except BlockingIOError:
            pass
        res: dict = {"which": which}
        with open(log, "w") as err:
            t0 = time.monotonic()
            p = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=err, stderr=err)
            try:
                deadline = t0 + timeout
                while "ready_s" not in res:
                    left = deadline - time.monotonic()
                    if left <= 0 or p.poll() is not None:
                        res["error"] = f"no READY=1 (exit {p.poll()}); see {log}"
                        break
                    self.sock.settimeout(min(left, 0.5))
                    try:
                        msg = self.sock.recv(256)
                    except TimeoutError:
                        continue
                    if b"READY=1" in msg.split(b"\n"):
                        res["ready_s"] = time.monotonic() - t0
                if "ready_s" in res and settle:
                    time.sleep(settle)
                    if p.poll() is None:
                        res["rss"] = rss_parts_mb(p.pid)
                        self.maps |= mapped_files(p.pid)
            finally:
                t_stop = time.monotonic()
                p.terminate()  # what `systemctl stop` sends
                try:
                    p.wait(10)
                    res["stop_s"] = time.monotonic() - t_stop
                except subprocess.TimeoutExpired:
                    res["stop_s"] = None  # SIGTERM ignored: systemd would wait TimeoutStopSec, then SIGKILL
                    p.kill()
                    p.wait()
        if "error" in res:
            print(f"  {which}: {res['error']}", file=sys.stderr)
        return res

    # -- what a reboot empties
    def files(self) -> list[str]:
        """The app's and its packages' files: Python (stdlib, venv), the project, .pyc cache, fonts, and
        every file the warm children had mapped (SDL2, Mesa, LLVM, ...)."""
        import sysconfig

        roots = {Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"]),
                 Path(sysconfig.get_paths()["platlib"]), ROOT / "kiosk", ROOT / "devices", ROOT / "screens",
                 ROOT / "api", ROOT / "assets", self.cache}
        prefix = self.env.get("PYTHONPYCACHEPREFIX")
        if prefix:
            roots.add(Path(prefix))
        roots.add(Path(self.font).parent)
        out = set(self.maps)
        for r in roots:
            for dirpath, _dirs, names in os.walk(r):
                out.update(os.path.join(dirpath, n) for n in names)
        return sorted(out)

    def run(self, runs: int) -> dict:
        results: dict[str, dict[str, list]] = {"warm": {"bare": [], "kiosk": []},
                                               "reboot": {"bare": [], "kiosk": []},
                                               "install": {"bare": [], "kiosk": []}}
        for which in ("bare", "kiosk"):  # unmeasured: caches made, page cache warm, maps collected
            print(f"start warm-up: {which}", file=sys.stderr)
            self.start(which, settle=1.0)
        # the caches as on a kiosk that has started before: ours, and Mesa's shader cache (also in
        # $XDG_CACHE_HOME), shared by both programs here
        shutil.rmtree(self.prepared, ignore_errors=True)
        shutil.copytree(self.cache, self.prepared)
        files = self.files()
        print(f"reboot approximation: {len(files)} files evicted before each such start", file=sys.stderr)
        for i in range(runs):
            print(f"starts {i + 1}/{runs}: warm, after a reboot, first after install", file=sys.stderr)
            # Kinds in turn, each for both programs: a reboot start evicts the other program's files too,
            # so a warm start must never come right after one (the kiosk reads more files than the bare
            # window does, and would start half cold).
            for which in ("bare", "kiosk"):
                results["warm"][which].append(self.start(which, settle=SETTLE))
            for which in ("bare", "kiosk"):
                evict(files)
                results["reboot"][which].append(self.start(which))
            for which in ("bare", "kiosk"):
                shutil.rmtree(self.cache, ignore_errors=True)  # a new user's empty cache: no `--prepare` run
                results["install"][which].append(self.start(which))
                shutil.rmtree(self.cache, ignore_errors=True)
                shutil.copytree(self.prepared, self.cache)
        return results


def mapped_files(pid: int) -> set[str]:
    out = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        f = line.split(maxsplit=5)[5:]
        if f and f[0].startswith("/") and not f[0].startswith(("/dev/", "/proc/", "/sys/", "/memfd:")):
            out.add(f[0].removesuffix(" (deleted)"))
    return out


# ====================================================================== parent: spawn and summarise


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.out = Path(args.out or tempfile.mkdtemp(prefix="bench-app-"))
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = str(ROOT)
        self.cache = self.out / "cache"  # the app's caches (XDG_CACHE_HOME), made by the install step
        self.env["XDG_CACHE_HOME"] = str(self.cache)
        if not args.no_pyc:
            # An installed kiosk has its .pyc files; this environment sets PYTHONDONTWRITEBYTECODE, so the
            # project's modules would be compiled on every start. Cache them outside the tree instead.
            self.env.pop("PYTHONDONTWRITEBYTECODE", None)
            self.env["PYTHONPYCACHEPREFIX"] = str(self.out / "pycache")
        self.cfg_path = None
        self.n = 0

    def child(self, mode: str, timeout: float = 120, **extra) -> dict:
        self.n += 1
        result = self.out / f"child-{self.n:03d}-{mode}.json"
        log = self.out / f"child-{self.n:03d}-{mode}.log"
        cmd = [sys.executable, __file__, "--child", mode, "--result", str(result), "--out", str(self.out),
               "--port", str(self.args.port), "--child-timeout", str(timeout)]
        if self.cfg_path:
            cmd += ["--cfg", str(self.cfg_path)]
        if self.args.tracemalloc:
            cmd.append("--tracemalloc")
        for k, v in extra.items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        t0 = time.monotonic()
        cmd += ["--t0", repr(t0)]
        with open(log, "w") as err:
            p = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=err, stderr=err)
            try:
                p.wait(timeout + 30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if not result.exists():
            return {"mode": mode, "errors": [f"no result (exit {p.returncode}); see {log}"]}
        res = json.loads(result.read_text())
        res["exit"] = p.returncode
        res["t0"] = t0
        if res["errors"]:
            print(f"  {mode}: {res['errors']} (log {log})", file=sys.stderr)
        return res

    def run(self) -> dict:
        only = set(self.args.only.replace("coldstart", "start").split(","))
        results: dict = {}
        with xvfb(SCREEN) as display:
            self.env["DISPLAY"] = display
            if "start" in only or "soak" in only:
                with Starts(self) as starts:
                    if "start" in only:
                        results["start"] = starts.run(self.args.runs)
                    else:  # the soak's reference: the bare window's idle RSS in the same run
                        results["start"] = {"warm": {"bare": [starts.start("bare", settle=SETTLE)], "kiosk": []}}
            if "soak" in only:
                print(f"soak: {self.args.sessions} sessions on fakes", file=sys.stderr)
                results["soak-fake"] = self.child("soak-fake", timeout=60 + 5 * self.args.sessions,
                                                  sessions=self.args.sessions)
            stack = None
            try:  # these need pcscd + vpcd (the demo stack starts pcscd unless one answers)
                if only & {"card", "soak-real", "backend"}:
                    stack = self.start_stack()
                if "backend" in only:
                    results["backend"] = self.backend(stack)
                if "card" in only:
                    print(f"card → name: {self.args.card_runs} runs in one app process", file=sys.stderr)
                    results["card"] = self.child("card", timeout=60 + 4 * self.args.card_runs,
                                                 card_runs=self.args.card_runs)
                if "soak-real" in only and self.args.real_sessions:
                    print(f"soak: {self.args.real_sessions} sessions on the real stack", file=sys.stderr)
                    results["soak-real"] = self.child("soak-real", timeout=60 + 10 * self.args.real_sessions,
                                                      sessions=self.args.real_sessions)
            finally:
                if stack is not None:
                    stack.stop()
        return results

    def start_stack(self):
        from sim.demo import DemoStack

        stack = DemoStack(self.out / "stack")
        cfg = stack.start()
        cfg = cfg.model_copy(update={"devices": cfg.devices.model_copy(
            update={"sscard_reader": READERS[self.args.port]})})
        self.cfg_path = self.out / "config.json"
        self.cfg_path.write_text(json.dumps(cfg.model_dump(mode="json")))
        return stack

    def backend(self, stack) -> dict:
        """The kiosk's backend client against the demo stack's server over mutual TLS on loopback."""
        from kiosk import config
        from kiosk.factory import build_backend

        cfg = config.parse(json.loads(self.cfg_path.read_text()))
        ssn = "370102195203140527"  # the fictional 'elder' persona
        client = build_backend(cfg)
        client.health()  # the session's connection and TLS handshake happen here, not in the timings
        out: dict[str, list[float]] = {"pension": [], "health_new": [], "receipt": []}
        for _ in range(self.args.backend_runs):
            t = time.monotonic()
            r = client.pension(ssn)
            out["pension"].append(time.monotonic() - t)
            assert not hasattr(r, "kind"), r
        for _ in range(max(5, self.args.backend_runs // 4)):
            fresh = build_backend(cfg)  # a new session: TCP connect + TLS 1.3 handshake with client cert
            t = time.monotonic()
            ok = fresh.health()
            out["health_new"].append(time.monotonic() - t)
            fresh.session.close()
            assert ok
        for i in range(max(5, self.args.backend_runs // 2)):
            t = time.monotonic()
            r = client.create_receipt(
                idempotency_key=f"{cfg.terminal.id}:bench-{os.getpid()}-{time.time_ns()}-{i}",
                terminal_id=cfg.terminal.id, site_id=cfg.terminal.site_id, service="pension_query", ssn=ssn,
                summary={"险种": "城乡居民基本养老保险"}, created_at="2025-06-01T10:00:00+08:00",
            )
            out["receipt"].append(time.monotonic() - t)
            assert not hasattr(r, "kind"), r
        return out


# ====================================================================== report


def _ms(s: dict, fmt: str = ".0f") -> list[str]:
    return [format(s[k], fmt) if s.get("n") else "-" for k in ("median", "p90", "min", "max")]


def report(results: dict) -> str:
    out = []
    bare_rss = None
    st = results.get("start")
    if st:
        titles = {"warm": "warm (page cache and caches warm, as on a restart of the service)",
                  "reboot": "after a reboot (page cache emptied of the app's files: posix_fadvise DONTNEED)",
                  "install": "first start after an install without `kiosk run --prepare` ($XDG_CACHE_HOME emptied "
                             "before each start: font faces, escpos, Mesa's shader cache; page cache warm)"}
        rows = []
        for key, per in st.items():
            if not per.get("kiosk"):
                continue
            med = {}
            for which, label in (("bare", "bare Kivy window, one Chinese label"), ("kiosk", "kiosk run --config F")):
                ok = [r["ready_s"] for r in per[which] if "ready_s" in r]
                sm = summary(ok, 1000)
                med[which] = sm.get("median")
                rows.append([f"{key}: {label}", f"{len(ok)}/{len(per[which])}", *_ms(sm), ""])
            ratio = med["kiosk"] / med["bare"] if med["bare"] and med["kiosk"] else float("nan")
            rows[-1][-1] = f"{ratio:.2f}× the bare window (goal ≤ 1.3×)"
        out.append(table("1. start: process start → READY=1 after the first (idle) frame (ms)",
                         ["", "runs", "median", "p90", "min", "max", "reference"], rows))
        out.append("\n".join(f"   {k}: {v}" for k, v in titles.items() if st[k].get("kiosk")))
        rss_rows = []
        for which, label in (("bare", "bare Kivy window, one Chinese label"), ("kiosk", "kiosk run --config F")):
            rs = [r["rss"] for r in st["warm"][which] if "rss" in r]
            if not rs:
                continue
            s_ = summary([r["VmRSS"] for r in rs])
            if which == "bare":
                bare_rss = s_["median"]
            ref = f"{s_['median'] - bare_rss:+.0f} over the bare window (goal ≤ +60)" if which == "kiosk" and bare_rss else ""
            rss_rows.append([label, f"{s_['median']:.0f}", f"{s_['max']:.0f}",
                             f"{rs[-1]['RssAnon']:.0f} / {rs[-1]['RssFile']:.0f}", ref])
        stops = [r.get("stop_s") for per in st.values() for r in per.get("kiosk", []) if "ready_s" in r]
        if stops:
            done = [x for x in stops if x is not None]
            out.append(f"   SIGTERM → exit of `kiosk run`: {len(done)}/{len(stops)} exited within 10 s"
                       + (f" (median {summary(done, 1000)['median']:.0f} ms)" if done else ""))
        out.append(table(f"3a. idle RSS {SETTLE:.0f} s after READY=1, warm starts (MB)",
                         ["", "median", "max", "anon / file", "reference"], rss_rows))
    card = results.get("card")
    if card:
        runs = card.get("card_runs", [])

        def d(a: str, b: str) -> dict:
            return summary([r[b] - r[a] for r in runs if a in r and b in r], 1000)

        rows = [
            ["card connects → CardInserted (pcscd polling)", *_ms(d("insert", "inserted_event")),
             "~400 bench_card.py"],
            ["CardInserted → read starts (event queue, 1/30 s pump)", *_ms(d("inserted_event", "read_start")),
             "≤ 33"],
            ["read starts → CardReadOk (driver read)", *_ms(d("read_start", "read_ok")), "4.1 bench_card.py"],
            ["CardReadOk → PIN state (event queue, 1/30 s pump)", *_ms(d("read_ok", "pin_state")), "≤ 33"],
            ["PIN state → frame with the name flipped", *_ms(d("pin_state", "shown")), "≤ 17 (60 fps)"],
            ["CardInserted → masked name on screen", *_ms(d("inserted_event", "shown")), "goal ≤ 100"],
            ["card connects → masked name on screen", *_ms(d("insert", "shown")), "what a person waits"],
        ]
        out.append(table(f"2. card present → masked name on screen ({len(runs)} runs, ms; pcscd + vpcd, "
                         "real driver, twin answers at once)", ["", "median", "p90", "min", "max", "reference"],
                         rows))
    for key, title in (("soak-fake", "fake devices + fake backend"), ("soak-real", "real drivers + demo stack")):
        s = results.get(key)
        if not s or not s.get("rss_sessions_mb"):
            continue
        rss = s["rss_sessions_mb"]
        n = len(rss)
        pick = sorted({0, min(9, n - 1), n // 2, n - 1})
        goal = f"goal ≤ {bare_rss + 60:.0f} (bare window {bare_rss:.0f} + 60)" if bare_rss else "goal ≤ bare + 60"
        rows = [["idle, before the first session", f"{s['rss_idle_mb']:.1f}", goal]]
        if "rss_harness_mb" in s:
            rows.append(["  + the driver's own import (pytest)", f"{s['rss_harness_mb']:+.1f}", "harness, constant"])
        rows += [[f"after session {i + 1}", f"{rss[i]:.1f}",
                  f"{rss[i] - bare_rss:+.1f} over the bare window" if bare_rss else ""] for i in pick]
        rows.append([f"growth, session 1 → {n}", f"{rss[-1] - rss[0]:+.1f}", "goal ≤ 5"])
        if n > 10:
            rows.append([f"growth, session 10 → {n}", f"{rss[-1] - rss[9]:+.1f}", "goal ≤ 5"])
        rows.append(["growth, idle → last session", f"{rss[-1] - s['rss_idle_mb']:+.1f}", ""])
        for label, key in (("idle", "rss_idle_parts"), (f"after {n}", "rss_end_parts")):
            p = s.get(key)
            if p:
                rows.append([f"{label}: RssAnon / RssFile", f"{p['RssAnon']:.0f} / {p['RssFile']:.0f}", ""])
        if "traced_mb" in s:
            rows.append(["Python objects allocated since idle", f"{s['traced_mb']:.1f}", "tracemalloc"])
        if "rss_after_trim_mb" in s:
            rows.append(["after gc.collect() / + malloc_trim(0)",
                         f"{s['rss_after_gc_mb']:.1f} / {s['rss_after_trim_mb']:.1f}", "held vs used"])
        sec = summary(s["session_s"])
        rows.append(["seconds per session (median)", f"{sec['median']:.2f}", "Director taps, ≥2 frames a step"])
        out.append(table(f"3b. RSS over {n} scripted sessions, {title} (MB)", ["", "VmRSS", "reference"], rows))
    b = results.get("backend")
    if b:
        rows = [
            ["pension GET (kept-alive session)", *_ms(summary(b["pension"], 1000), ".1f"), "3.8 (p95 5.9) helper"],
            ["health, new session (incl. TLS handshake)", *_ms(summary(b["health_new"], 1000), ".1f"), "10.7 helper"],
            ["receipt POST (kept-alive session)", *_ms(summary(b["receipt"], 1000), ".1f"), "8.8 helper"],
        ]
        out.append(table("backend client over mutual TLS on loopback (ms)",
                         ["", "median", "p90", "min", "max", "reference"], rows))
    return "\n\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="starts of each kind per program")
    ap.add_argument("--card-runs", type=int, default=12)
    ap.add_argument("--sessions", type=int, default=200, help="scripted sessions on fakes")
    ap.add_argument("--real-sessions", type=int, default=20, help="scripted sessions on the real stack (0: skip)")
    ap.add_argument("--port", type=int, default=35964, choices=sorted(READERS), help="vpcd port of the reader")
    ap.add_argument("--backend-runs", type=int, default=40)
    ap.add_argument("--only", default="start,soak",
                    help="start, soak (fakes); card, soak-real, backend (these start pcscd unless one answers)")
    ap.add_argument("--out", default=None, help="folder for child logs and results (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write every raw figure here")
    ap.add_argument("--tracemalloc", action="store_true", help="soak: trace Python allocations (slower)")
    ap.add_argument("--no-pyc", action="store_true", help="keep PYTHONDONTWRITEBYTECODE: compile on each start")
    # child-only
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cfg", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-timeout", type=float, default=60, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        Child(args).run()
        return 0
    bench = Bench(args)
    results = bench.run()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(report(results))
    print(f"\nraw results and child logs: {bench.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
