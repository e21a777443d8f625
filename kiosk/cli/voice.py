"""`kiosk voice volume`: the technician sets the loudness of the voice prompts.

    kiosk voice volume [--config F]           the volume the kiosk starts with, and where it comes from
    kiosk voice volume [--config F] N         save N (0 silent .. 100) as this station's volume
    kiosk voice volume [--config F] --reset   forget the saved volume: [terminal] voice_volume applies again

The saved volume lives in [terminal] data_dir/voice.toml (kiosk.toml stays as installed). A running kiosk looks at
that file every couple of seconds and applies a change at once (on the home screen it says a short sample at the
new loudness); a kiosk started later begins with it. There is no volume control on the kiosk's own screen.
Exit codes: 0 done · 2 not a volume · 73 the file could not be written · 78 configuration error.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_CONFIG = "/etc/kiosk/kiosk.toml"
EXIT_OK, EXIT_USAGE, EXIT_CANTCREAT = 0, 2, 73


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("voice", help="the voice prompts: volume")
    sub = p.add_subparsers(dest="voice_cmd", required=True)
    v = sub.add_parser("volume", help="show or set the voice volume (0-100)")
    v.add_argument("--config", default=DEFAULT_CONFIG)
    v.add_argument("value", nargs="?", help="0 (silent) to 100")
    v.add_argument("--reset", action="store_true", help="forget the saved volume")
    return p


def run(args: argparse.Namespace) -> int:
    from kiosk import config

    if args.reset and args.value is not None:
        print("give a volume or --reset, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.reset:
        removed = config.reset_volume(args.config)
        cfg = config.load(args.config)
        print(f"saved volume {'removed' if removed else 'was not set'}: "
              f"{cfg.terminal.voice_volume} from [terminal] voice_volume applies (a running kiosk within seconds)")
        return EXIT_OK
    if args.value is None:
        cfg = config.load(args.config)
        now = config.saved_volume(cfg)
        saved = config.volume_path(cfg).is_file()
        where = f"saved in {config.volume_path(cfg)}" if saved else "[terminal] voice_volume"
        print(f"{now} ({where})")
        return EXIT_OK
    try:
        value = config.check_volume(int(args.value, 10))
    except ValueError:
        print(f"not a volume: {args.value!r} — give a whole number from 0 to 100", file=sys.stderr)
        return EXIT_USAGE
    try:
        path = config.set_volume(args.config, value)
    except OSError as e:
        print(f"cannot save the volume: {e.filename}: {e.strerror} — check [terminal] data_dir, and run as the "
              "kiosk user or root", file=sys.stderr)
        return EXIT_CANTCREAT
    print(f"volume {value} saved in {path}; a running kiosk applies it within seconds")
    return EXIT_OK
