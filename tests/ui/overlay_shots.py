"""Screenshots of the top bar's 再听一遍 / 请工作人员帮助, the help panel and the 把字变小吗？ question, with the
director's checks, on the real app (fakes for the devices): run under Xvfb by test_overlays.py.

    xvfb-run -a -s "-screen 0 1920x1920x24" env PYTHONPATH=. python tests/ui/overlay_shots.py OUT [--portrait]

The session's help fields (issue 8, built by kiosk/view.py) are put on the view here when this branch's view
does not have them yet, so the screens can be checked either way.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

HELP = {"title": "请工作人员帮助", "sent": "已通知工作人员，请稍候",
        "lines": (("志愿者", "李明"), ("电话", "138 0000 0000"), ("服务站电话", "0531-12345678")),
        "close_label": "关闭"}
SHRINK = {"title": "把字变小吗？", "body": "字变小后，看起来会吃力一些", "yes_label": "变小", "no_label": "不变"}


def main(out: Path, portrait: bool) -> int:
    from kiosk import app as kapp

    font = kapp.find_cjk_font()
    kapp.prepare_kivy(size=kapp.SIZES["portrait" if portrait else "landscape"], dev=False)
    from kivy.clock import Clock

    from kiosk import session as S
    from kiosk import view as V
    from kiosk.runtime import Runtime, Site
    from sim.fakes import FakeCardReader, FakePrinter

    for name in ("Repeat", "AskHelp"):  # this branch's session may not have them yet
        if not hasattr(S, name):
            setattr(S, name, dataclass(frozen=True)(type(name, (), {})))
    if not hasattr(S, "ConfirmShrink"):
        S.ConfirmShrink = dataclass(frozen=True)(type("ConfirmShrink", (), {"__annotations__": {"yes": bool}}))
    mode = {"overlay": None, "elder": True}
    real_build = V.build

    def build(state, now):
        v = real_build(state, now)
        extra = {"repeat_label": getattr(v, "repeat_label", "") or "再听一遍",
                 "help_label": getattr(v, "help_label", "") or "请工作人员帮助",
                 "help": HELP if mode["overlay"] == "help" else None,
                 "confirm_shrink": SHRINK if mode["overlay"] == "shrink" else None}
        for k, val in extra.items():
            object.__setattr__(v, k, val)
        return v

    V.build = build
    runtime = Runtime(card_reader=FakeCardReader(), printer=FakePrinter(), backend=object(),
                      site=Site("T-UI-0001", "370102001", "示范镇人社服务站"),
                      settings=S.Settings(inactivity=600, pin=300, warn=15), voice=None)
    app = kapp.build_app(runtime, font_path=font)
    prefix = "portrait" if portrait else "landscape"
    result: dict = {}

    def journey(d):
        yield d.until_screen("idle")
        yield d.shot("01-idle-top-bar")
        mode["overlay"] = "help"
        app.render()
        yield d.frames(3)
        yield d.shot("02-help")
        mode["overlay"] = "shrink"
        app.render()
        yield d.frames(3)
        yield d.shot("03-confirm-shrink")
        mode["overlay"] = None
        app.render()
        yield d.frames(3)
        yield d.shot("04-closed")

    def done(director):
        result["errors"] = director.errors
        app.stop()

    def start(*_a):
        from sim.director import Director

        director = Director(app, None, out, prefix)
        Clock.schedule_once(lambda _dt: director.run(journey, done), 0.5)

    app.bind(on_start=start)
    app.run()
    report = json.loads((out / f"{prefix}-report.json").read_text(encoding="utf-8"))
    return 1 if result.get("errors") or report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), "--portrait" in sys.argv[2:]))
