"""`kiosk`: run the terminal, run the demo, and the technician's commands.

  kiosk run --config /etc/kiosk/kiosk.toml    the kiosk on real devices
  kiosk demo [--out DIR]                      the demo on its embedded default (backend + twins);
                                              with no display: the scripted journeys under Xvfb
  kiosk devices [--config F]                  each device and its status
  kiosk card read | printer test | idcard read | scan   (kiosk/cli/)
  kiosk outbox list [--json] | sync [--config F]        the outbox of filings (exit 75: backend unreachable)
  kiosk voice volume [--config F] [N | --reset]         the voice prompts' volume (0-100)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Literal

from kiosk import logs
from kiosk.config import ConfigError, Timeouts

log = logging.getLogger("kiosk")
Orientation = Literal["landscape", "portrait"]
ROOT = Path(__file__).resolve().parents[2]


def _command_modules():
    from kiosk.cli import card, idcard, outbox, printer, scan, voice

    return {"card": card, "printer": printer, "idcard": idcard, "scan": scan, "outbox": outbox, "voice": voice}


def _first_word(argv: list[str] | None) -> str | None:
    """The command word (the first argument that is not an option or --log-file's value)."""
    args = sys.argv[1:] if argv is None else argv
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--log-file":
            skip = True
        elif not a.startswith("-"):
            return a
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kiosk", description="Village social-security self-service kiosk")
    ap.add_argument("--log-file", default=None)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the kiosk on its configured devices")
    r.add_argument("--config", required=True)
    r.add_argument("--prepare", action="store_true",
                   help="make the caches a first start would make (font faces, printer capabilities), then exit")
    d = sub.add_parser("demo", help="run the demo: reference backend + device twins")
    d.add_argument("--out", default=None, help="folder for screenshots and receipts (default: out/demo-TIME)")
    d.add_argument("--scripted", action="store_true", help="run the scripted journeys (default with no display)")
    d.add_argument("--journey", default=None, choices=["pension", "faults", "identity", "filings"],
                   help="one journey only (needs --orientation; scripted demo only)")
    d.add_argument("--orientation", choices=["landscape", "portrait"], default=None)
    d.add_argument("--mode", choices=["elder", "standard"], default=None,
                   help="type size of the scripted journeys (default: both, large type first)")
    d.add_argument("--inactivity", type=float, default=None, help=argparse.SUPPRESS)
    v = sub.add_parser("devices", help="list devices and their status")
    v.add_argument("--config", required=True)
    v.add_argument("--json", action="store_true")
    # The technician's commands import their drivers (the receipt renderer, PC/SC...): `kiosk run`, what
    # systemd starts, does not build their parsers, so it does not wait for those imports.
    mods = {} if _first_word(argv) in ("run", "demo", "devices") else _command_modules()
    for m in mods.values():
        m.add_parser(sub)
    args = ap.parse_args(argv)
    logs.setup(args.log_file)
    try:
        if args.command == "run":
            return run_kiosk(args.config, prepare=args.prepare)
        if args.command == "demo":
            return demo(args)
        if args.command == "devices":
            return devices(args)
        return mods[args.command].run(args)
    except ConfigError as e:
        print(f"configuration error:\n{e}", file=sys.stderr)
        return 78  # EX_CONFIG


# ---------------------------------------------------------------- the kiosk


def make_voice(cfg):
    """Offline prompts: a station's recorded clip where there is one, else espeak-ng's Mandarin voice."""
    from kiosk.config import saved_volume
    from kiosk.voice import CLIPS_DIR, Voice

    t = cfg.terminal
    dirs = [d for d in (t.voice_clips, CLIPS_DIR) if d]
    # the technician's saved volume wins; elder is only the default speed: the runtime tells the voice the
    # current 大字模式 with every prompt
    return Voice(dirs, volume=saved_volume(cfg), elder=t.elder_mode)


def make_runtime(cfg, *, voice=True, camera=None):
    from kiosk.factory import build_backend, build_devices, build_optional_devices
    from kiosk.runtime import Runtime, Site

    card, printer = build_devices(cfg)
    optional = build_optional_devices(cfg)
    if camera is not None:
        optional["camera"] = camera
    t = cfg.timeouts
    outbox, sync, catalog_cache = make_filing_parts(cfg)
    return Runtime(
        card_reader=card, printer=printer, backend=build_backend(cfg),
        site=Site(cfg.terminal.id, cfg.terminal.site_id, cfg.terminal.site_name, cfg.devices.printer_profile,
                  t.card_read),
        locale=cfg.terminal.locale, elder_mode=cfg.terminal.elder_mode,
        voice=make_voice(cfg) if voice else None,
        outbox=outbox, sync=sync, catalog_cache=catalog_cache,
        **session_options(cfg),
        **optional,
    )


def session_options(cfg) -> dict:
    """What the config tells the session: its timeouts, the idle attract interval, who helps at the station,
    where the technician's volume is kept, and the configured one that applies when it is removed."""
    from kiosk import session as S
    from kiosk.config import volume_path

    t = cfg.timeouts
    return {
        "settings": S.Settings(inactivity=t.inactivity, pin=t.pin, warn=t.warn,
                               attract=float(cfg.terminal.attract_interval)),
        "helpdesk": S.HelpDesk(tuple((v.name, v.phone) for v in cfg.help.volunteers), cfg.help.station_phone),
        "volume_file": volume_path(cfg),
        "configured_volume": cfg.terminal.voice_volume,
    }


def make_filing_parts(cfg):
    """The outbox (durable, encrypted), its sync worker (its own backend clients) and the catalog cache, all in
    [terminal] data_dir. A key problem is a configuration error: a new key would strand every queued filing."""
    from pathlib import Path

    from kiosk.catalog_cache import CatalogCache
    from kiosk.cli.outbox import open_outbox
    from kiosk.factory import build_backend
    from kiosk.outbox import SyncWorker

    data = Path(cfg.terminal.data_dir)
    try:
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise ConfigError(f"[terminal] data_dir {data}: {e.strerror}") from None
    outbox = open_outbox(cfg)
    return outbox, SyncWorker(outbox, lambda: build_backend(cfg)), CatalogCache(data / "catalog")


def run_app(cfg, *, size=None, on_ready=None, voice=True, camera=None, font=None) -> int:
    from kiosk import app as kapp

    font = font or kapp.find_cjk_font()  # before any window: a clear error, not boxes on screen
    kapp.prepare_kivy(size=size, dev=cfg.terminal.dev)
    runtime = make_runtime(cfg, voice=voice, camera=camera)
    application = kapp.build_app(
        runtime, font_path=font, dev=cfg.terminal.dev, shuffle_keypad=cfg.terminal.shuffle_keypad, on_ready=on_ready,
    )
    application.run()
    return getattr(application, "exit_code", 0)


def run_kiosk(config_path: str, *, prepare: bool = False) -> int:
    from kiosk import config
    from kiosk.app import FontMissing, find_cjk_font

    cfg = config.load(config_path)
    try:
        if prepare:
            return prepare_caches()
        font = find_cjk_font()
        return run_app(cfg, font=font, on_ready=lambda application: _prepare_later(application, config_path, font))
    except FontMissing as e:
        print(f"startup error: {e}", file=sys.stderr)
        return 69


def prepare_caches() -> int:
    """What the first start would otherwise pay for: the Chinese face on its own and with its subroutines
    inlined (less memory per font size), and python-escpos's capability pickle. Run at install."""
    from kiosk import app as kapp

    face = kapp.find_cjk_font()
    kapp.make_flat_face(face)
    import kiosk.receipts  # noqa: F401  (its import writes the escpos capability cache)

    return 0


def _prepare_later(application, config_path: str, font: str) -> None:
    """When install did not prepare the caches: make them in a background process at the lowest CPU
    priority, 10 s after the start (nothing before the first frame); the next start uses them."""
    from kivy.clock import Clock

    from kiosk import app as kapp

    def spawn(_dt):
        flat = kapp.flat_face_path(font)
        if font == str(flat) or font.lower().endswith((".ttc", ".otc")):
            return  # made already; or the face could not be extracted (read-only cache): nothing to do
        tmp = flat.with_suffix(".tmp")
        if tmp.exists() and time.time() - tmp.stat().st_mtime < 300:
            return  # another process is making it
        log.info("making the font cache in the background (once)")
        nice = [exe, "-n", "19"] if (exe := shutil.which("nice")) else []
        subprocess.Popen(
            [*nice, sys.executable, "-m", "kiosk", "run", "--config", config_path, "--prepare"],
            stdin=subprocess.DEVNULL, start_new_session=True,
        )

    application._prepare_event = Clock.schedule_once(spawn, 10)


# ---------------------------------------------------------------- the demo


def demo(args) -> int:
    out = Path(args.out or ROOT / "out" / f"demo-{datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    scripted = args.scripted or not os.environ.get("DISPLAY")
    if args.mode and not scripted:
        log.warning("--mode applies to the scripted journeys only: the window starts in large type")
    if scripted and args.journey and args.orientation and os.environ.get("DISPLAY"):
        return _demo_one(out, args.journey, args.orientation, args.inactivity, args.mode or "elder")
    if scripted:
        return _demo_scripted(out, args.inactivity, args.journey, args.orientation, args.mode)
    return _demo_interactive(out, args.orientation or "landscape")


def _journey_name(journey: str, mode: str) -> str:
    """How a run is named in file names and the summary: elder mode is the default, standard is marked."""
    return journey if mode == "elder" else f"{journey}-{mode}"


def _demo_one(out: Path, journey: str, orientation: Orientation, inactivity: float | None, mode: str = "elder") -> int:
    """One journey in one orientation and type size (one process: Kivy opens one window per process)."""
    from kiosk import app as kapp
    from sim.demo import DemoStack
    from sim.journeys import JOURNEYS

    name = _journey_name(journey, mode)
    timeouts = Timeouts(inactivity=inactivity or 60, pin=max(inactivity or 45, 10), warn=min(15, (inactivity or 60) / 2))
    stack = DemoStack(out / f"stack-{orientation}-{name}", orientation=orientation, timeouts=timeouts)
    result = {"code": 1}
    try:
        cfg = stack.start()
        if mode == "standard":
            cfg = cfg.model_copy(update={"terminal": cfg.terminal.model_copy(update={"elder_mode": False})})

        def on_ready(application):
            from sim.director import Director

            def done(director):
                result["code"] = 1 if director.errors else 0
                for e in director.errors:
                    log.error("journey %s/%s: %s", name, orientation, e)
                application.stop()

            Director(application, stack, out / "screens", f"{orientation}-{name}").run(JOURNEYS[journey], done)

        run_app(cfg, size=kapp.SIZES[orientation], on_ready=on_ready, voice=False, camera=stack.camera)
        if journey == "filings" and mode == "elder":  # the clerk's page does not change with the kiosk's type
            try:  # what the township clerk sees of the filings just made
                for made in stack.capture_worklist(out / "worklist"):
                    log.info("worklist page: %s", made)
            except Exception as e:
                log.error("worklist page not captured: %s", e)
                result["code"] = 1
    finally:
        stack.stop()
    for png in (stack.out / "receipts").glob("*.png"):
        dest = out / "receipts" / f"{orientation}-{name}-{png.name}"
        dest.parent.mkdir(exist_ok=True)
        shutil.copy(png, dest)
    return result["code"]


class Xvfb:
    """A virtual screen big enough for both orientations (measured on the reference machine)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.display = ""

    def __enter__(self):
        exe = shutil.which("Xvfb")
        if exe is None:
            raise RuntimeError("no display and no Xvfb — apt-get install xvfb")
        free = [n for n in range(90, 140)
                if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists()]
        if not free:
            raise RuntimeError("no free X display number between :90 and :139")
        self.display = f":{free[0]}"
        proc = self.proc = subprocess.Popen(
            [exe, self.display, "-screen", "0", "1920x1920x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{self.display[1:]}").exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("Xvfb did not start")
            time.sleep(0.05)  # Xvfb gives no ready signal but its socket file
        return self

    def __exit__(self, *exc):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _demo_scripted(out: Path, inactivity: float | None, only_journey=None, only_orientation=None,
                   only_mode=None) -> int:
    """Every journey (or the one asked for) in both orientations and both type sizes, each in its own process
    under one Xvfb."""
    from sim.journeys import JOURNEYS

    results = {}
    with Xvfb() as x:
        env = {**os.environ, "DISPLAY": x.display}
        for orientation in [only_orientation] if only_orientation else ["landscape", "portrait"]:
            for journey in [only_journey] if only_journey else list(JOURNEYS):
                modes = [only_mode] if only_mode else ["elder", "standard"]
                for mode in modes:
                    cmd = [sys.executable, "-m", "kiosk", "--log-file", str(out / "demo.log"), "demo", "--scripted",
                           "--out", str(out), "--journey", journey, "--orientation", orientation, "--mode", mode]
                    if inactivity or journey == "faults":
                        cmd += ["--inactivity", str(inactivity or 12)]
                    code = subprocess.run(cmd, env=env, cwd=ROOT, timeout=600).returncode
                    results[f"{orientation}/{_journey_name(journey, mode)}"] = code
    ok = all(c == 0 for c in results.values())
    (out / "summary.json").write_text(json.dumps(results, indent=1))
    print(f"demo {'finished' if ok else 'FAILED'}: {results}")
    print(f"screenshots: {out / 'screens'}\nreceipts:    {out / 'receipts'}")
    return 0 if ok else 1


def _demo_interactive(out: Path, orientation: Orientation) -> int:
    from kiosk import app as kapp
    from sim.demo import DemoStack

    stack = DemoStack(out, orientation=orientation)
    try:
        cfg = stack.start()
        cfg = cfg.model_copy(update={"terminal": cfg.terminal.model_copy(update={"dev": True})})

        def on_ready(application):
            from sim.devpanel import attach

            attach(application, stack)

        return run_app(cfg, size=kapp.SIZES[orientation], on_ready=on_ready, camera=stack.camera)
    finally:
        stack.stop()


# ---------------------------------------------------------------- devices


def devices(args) -> int:
    from kiosk import config
    from kiosk.factory import build_backend, build_devices, build_optional_devices

    cfg = config.load(args.config)
    card, printer = build_devices(cfg)
    rows = [("sscard", cfg.devices.sscard_reader or "(first reader)", card.status().value)]
    ps = printer.status()
    rows.append(("printer", cfg.devices.printer_port, f"{ps.device.value}, paper {ps.paper.value}"))
    opt = build_optional_devices(cfg)
    d = cfg.devices
    if opt["idcard_reader"] is not None:
        rows.append(("idcard", d.idcard_port, f"SAM {opt['idcard_reader'].sam_status().value}"))
    if opt["scanner"] is not None:
        rows.append(("scanner", d.scanner_port, "online" if Path(d.scanner_port).exists() else "no_device"))
    if opt["camera"] is not None:
        rows.append(("camera", d.camera, opt["camera"].status().value))
    backend = build_backend(cfg)
    rows.append(("backend", cfg.backend.url, "online" if backend.health() else "offline"))
    if args.json:
        print(json.dumps([{"device": a, "where": b, "status": c} for a, b, c in rows], ensure_ascii=False))
    else:
        for a, b, c in rows:
            print(f"{a:<10} {b:<40} {c}")
    # non-zero when anything is not fully working, so a technician's script can tell
    return 0 if all(c.startswith(("online", "SAM online", "SAM busy")) and "paper out" not in c for _, _, c in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
